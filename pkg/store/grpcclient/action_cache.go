package grpcclient

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
)

// acClient implements store.ActionCache over one remote's ActionCache
// service, under the remote's instance name. Requests name the action
// digest's function (unset for SHA-256); the digests inside a result the
// remote answers are of that function, which is how callers parse them
// (digest.FromProtoIn(action.Func, ...)). Safe for concurrent use.
type acClient struct{ r *Remote }

func (c *acClient) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	ar, err := c.r.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: c.r.instance, ActionDigest: action.Proto(), DigestFunction: fnField(action.Func)})
	if err != nil {
		return nil, wrap(c.r.name, err)
	}
	return ar, nil
}

func (c *acClient) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	_, err := c.r.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{InstanceName: c.r.instance, ActionDigest: action.Proto(), ActionResult: result, DigestFunction: fnField(action.Func)})
	return wrap(c.r.name, err)
}
