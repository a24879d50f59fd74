package execution

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// push sends a locally produced scenario-3 result to the remote cache:
// through Config.Enqueue when set, else synchronously — the blobs it
// references plus the Action and Command to the storage service first, then
// UpdateActionResult on the remote action cache. A failure is logged and
// counted; the client's Execute still succeeds.
func (s *Server) push(ctx context.Context, j *job, res *repb.ActionResult) {
	var err error
	if s.cfg.Enqueue != nil {
		err = s.cfg.Enqueue(ctx, j.req.GetInstanceName(), j.digest, res)
	} else {
		err = s.pushNow(ctx, j, res)
	}
	if err != nil {
		s.m.pushFailures.Inc()
		s.cfg.Logger.Error("execution: cannot push action result to the remote cache", "action", j.digest, "err", err)
	}
}

func (s *Server) pushNow(ctx context.Context, j *job, res *repb.ActionResult) error {
	src := j.plan.CAS
	if j.plan.LocalCAS != nil {
		src = j.plan.LocalCAS
	}
	refs, err := store.ReferencedBlobs(ctx, src, res)
	if err != nil {
		return err
	}
	cd, _ := digest.FromProto(j.action.GetCommandDigest())
	refs = append(refs, j.digest, cd)
	if err := copyMissing(ctx, src, j.plan.RemoteCAS, refs); err != nil {
		return err
	}
	return j.plan.RemoteAC.UpdateActionResult(ctx, j.digest, res)
}

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
	refs, err := store.ReferencedBlobs(ctx, src, res)
	if err == nil {
		err = copyMissing(ctx, src, j.plan.PrimaryCAS, refs)
	}
	if err != nil {
		st := status.Convert(err)
		return status.Errorf(st.Code(), "storing the outputs on the storage service: %s", st.Message())
	}
	return nil
}
