package execution

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// job is one execution to be decided: the validated request, the instance's
// plan and the Action read from the CAS.
type job struct {
	req      *repb.ExecuteRequest
	plan     *Plan
	digest   digest.Digest
	action   *repb.Action
	fallback string // why a scenario-1 action runs locally; "" if it does not
}

// checkRequest validates what Execute needs before touching storage and
// returns the action digest, of the request's digest function: the one
// digest_function names or, unset, the one the action digest's length
// implies (REAPI 2.3), which must be among allowed. Every digest of the
// action (its Command, input root, Directories and files, and its result)
// is of that function.
func checkRequest(req *repb.ExecuteRequest, allowed digest.FunctionSet) (digest.Digest, error) {
	fn, err := digest.Resolve(req.GetDigestFunction(), req.GetActionDigest().GetHash(), allowed)
	if err != nil {
		return digest.Digest{}, err
	}
	d, err := digest.FromProtoIn(fn, req.GetActionDigest())
	if err != nil {
		return digest.Digest{}, grpcerr.InvalidArgument("action_digest", "%s", status.Convert(err).Message())
	}
	return d, nil
}

// loadAction reads and decodes the Action d from cas and validates its
// digests as of d's function. A missing Action is FAILED_PRECONDITION with
// a MISSING violation, as REAPI prescribes.
func loadAction(ctx context.Context, cas store.CAS, d digest.Digest) (*repb.Action, error) {
	a := &repb.Action{}
	if err := readMessage(ctx, cas, d, a); err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, store.MissingBlobsError("the CAS (the Action)", []digest.Digest{d})
		}
		return nil, err
	}
	if _, err := digest.FromProtoIn(d.Func, a.GetCommandDigest()); err != nil {
		return nil, grpcerr.InvalidArgument("action.command_digest", "%s", status.Convert(err).Message())
	}
	if _, err := digest.FromProtoIn(d.Func, a.GetInputRootDigest()); err != nil {
		return nil, grpcerr.InvalidArgument("action.input_root_digest", "%s", status.Convert(err).Message())
	}
	return a, nil
}

// readMessage reads blob d from cas and decodes it into m. NOT_FOUND passes
// through; a blob that does not decode is INVALID_ARGUMENT (the client
// uploaded it).
func readMessage(ctx context.Context, cas store.CAS, d digest.Digest, m proto.Message) error {
	return store.ReadMessage(ctx, cas, d, m)
}
