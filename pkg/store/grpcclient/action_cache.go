package grpcclient

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
)

// acClient implements store.ActionCache over one remote's ActionCache
// service, under the remote's instance name. Safe for concurrent use.
type acClient struct{ r *Remote }

func (c *acClient) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	ar, err := c.r.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: c.r.instance, ActionDigest: action.Proto()})
	if err != nil {
		return nil, wrap(c.r.name, err)
	}
	return ar, nil
}

func (c *acClient) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	_, err := c.r.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{InstanceName: c.r.instance, ActionDigest: action.Proto(), ActionResult: result})
	return wrap(c.r.name, err)
}
