package execution_test

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// tieredCAS is a minimal stand-in for the ordered fan-out: reads try the
// tiers in order (NOT_FOUND moves on), FindMissing prunes tier by tier,
// writes go to the first tier.
type tieredCAS []store.CAS

func (t tieredCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	for _, tier := range t {
		var err error
		if ds, err = tier.FindMissing(ctx, ds); err != nil || len(ds) == 0 {
			return ds, err
		}
	}
	return ds, nil
}

func (t tieredCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	for _, tier := range t {
		rc, err := tier.Get(ctx, d, offset)
		if status.Code(err) != codes.NotFound {
			return rc, err
		}
	}
	return nil, status.Errorf(codes.NotFound, "blob %s not found in any tier", d)
}

func (t tieredCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return t[0].Put(ctx, d, r)
}

// tieredAC looks results up tier by tier and writes to the first tier.
type tieredAC []store.ActionCache

func (t tieredAC) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	for _, tier := range t {
		ar, err := tier.GetActionResult(ctx, action)
		if status.Code(err) != codes.NotFound {
			return ar, err
		}
	}
	return nil, status.Errorf(codes.NotFound, "action result %s not found in any tier", action)
}

func (t tieredAC) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	return t[0].UpdateActionResult(ctx, action, result)
}
