package grpcclient

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// breakerCAS fails calls fast while the remote's breaker is open and feeds
// every outcome to it, including failures of a Get's reader mid-stream.
// Every method of store.CAS, fast paths included, goes through the
// breaker.
type breakerCAS struct {
	base store.CAS
	b    *breaker
}

func (c *breakerCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if err := c.b.allow(); err != nil {
		return nil, err
	}
	missing, err := c.base.FindMissing(ctx, ds)
	c.b.done(ctx, err)
	return missing, err
}

func (c *breakerCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.GetWith(ctx, d, offset, store.GetHint{})
}

func (c *breakerCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	if err := c.b.allow(); err != nil {
		return nil, err
	}
	r, err := c.base.GetWith(ctx, d, offset, hint)
	c.b.done(ctx, err)
	if err != nil {
		return nil, err
	}
	return &breakerReader{ReadCloser: r, ctx: ctx, b: c.b}, nil
}

// GetMany counts as one call: the first entry error that is
// not NOT_FOUND (a call that failed, or bad data) counts as the remote's
// failure; otherwise the call counts as a success.
func (c *breakerCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	if err := c.b.allow(); err != nil {
		return store.FailAll(len(ds), err)
	}
	out := c.base.GetMany(ctx, ds)
	var failure error
	for _, r := range out {
		if r.Err != nil && status.Code(r.Err) != codes.NotFound {
			failure = r.Err
			break
		}
	}
	c.b.done(ctx, failure)
	return out
}

func (c *breakerCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, store.PutHint{})
}

func (c *breakerCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	if err := c.b.allow(); err != nil {
		return err
	}
	return c.b.doneWith(ctx, c.base.PutWith(ctx, d, r, hint))
}

func (c *breakerCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	if err := c.b.allow(); err != nil {
		return err
	}
	return c.b.doneWith(ctx, c.base.PutBytes(ctx, d, data, hint))
}

// breakerReader reports a failing Read (a stream that broke or delivered
// bad data) to the breaker; a clean end was already counted as success.
type breakerReader struct {
	io.ReadCloser
	ctx      context.Context
	b        *breaker
	reported bool
}

func (r *breakerReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !r.reported {
		r.reported = true
		if r.b.allow() == nil { // count it like a call of its own
			r.b.done(r.ctx, err)
		}
	}
	return n, err
}

// breakerAC is breakerCAS for the action cache.
type breakerAC struct {
	base store.ActionCache
	b    *breaker
}

func (c *breakerAC) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	if err := c.b.allow(); err != nil {
		return nil, err
	}
	ar, err := c.base.GetActionResult(ctx, action)
	c.b.done(ctx, err)
	return ar, err
}

func (c *breakerAC) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	if err := c.b.allow(); err != nil {
		return err
	}
	return c.b.doneWith(ctx, c.base.UpdateActionResult(ctx, action, result))
}
