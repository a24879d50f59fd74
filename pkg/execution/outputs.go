package execution

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// storeOutputs copies the blobs a local run's result references to
// Plan.PrimaryCAS, when there is one, before the result is recorded or
// returned: like a client's write, an output is acknowledged only once the
// primary store has it. Its failure fails the Execute (the result still
// goes back, but is not cached), with the storage service's code.
func (s *Server) storeOutputs(ctx context.Context, j *job, res *repb.ActionResult) error {
	if j.plan.PrimaryCAS == nil || res == nil {
		return nil
	}
	src := j.plan.CAS
	if j.plan.LocalCAS != nil {
		src = j.plan.LocalCAS
	}
	refs, err := store.ReferencedBlobs(ctx, src, j.digest.Func, res)
	if err == nil {
		err = copyMissing(ctx, src, j.plan.PrimaryCAS, refs)
	}
	if err != nil {
		st := status.Convert(err)
		return status.Errorf(st.Code(), "storing the outputs on the storage service: %s", st.Message())
	}
	return nil
}
