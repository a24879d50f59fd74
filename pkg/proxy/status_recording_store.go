package proxy

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// newStatusRecordingCAS counts in rec the hits and misses (NOT_FOUND) of
// the calls to base, for the Status RPC; failures are recorded per role by
// the upstream client itself. Cost: one short mutex per counted call. Safe
// for concurrent use.
func newStatusRecordingCAS(base store.CAS, rec *outcomes) store.CAS {
	return &statusRecordingCAS{base: base, rec: rec}
}

type statusRecordingCAS struct {
	base store.CAS
	rec  *outcomes
}

// note counts err, the outcome of a call, as a hit or a
// miss when counted. A digest function the remote does not take
// (store.IsUnsupportedFunction) is neither: the remote was not asked.
func note(rec *outcomes, err error, counted bool) {
	switch {
	case err == nil:
		rec.ok(counted, false)
	case store.IsUnsupportedFunction(err):
	case status.Code(err) == codes.NotFound:
		rec.ok(false, counted)
	}
}

func (c *statusRecordingCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	missing, err := c.base.FindMissing(ctx, ds)
	note(c.rec, err, false)
	return missing, err
}

func (c *statusRecordingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.GetWith(ctx, d, offset, store.GetHint{})
}

func (c *statusRecordingCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	rc, err := c.base.GetWith(ctx, d, offset, hint)
	note(c.rec, err, true)
	return rc, err
}

func (c *statusRecordingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, store.PutHint{})
}

func (c *statusRecordingCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	err := c.base.PutWith(ctx, d, r, hint)
	note(c.rec, err, false)
	return err
}

func (c *statusRecordingCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	err := c.base.PutBytes(ctx, d, data, hint)
	note(c.rec, err, false)
	return err
}

// newStatusRecordingActionCache is newStatusRecordingCAS for an action
// cache.
func newStatusRecordingActionCache(base store.ActionCache, rec *outcomes) store.ActionCache {
	return &statusRecordingAC{base: base, rec: rec}
}

type statusRecordingAC struct {
	base store.ActionCache
	rec  *outcomes
}

func (a *statusRecordingAC) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	ar, err := a.base.GetActionResult(ctx, action)
	note(a.rec, err, true)
	return ar, err
}

func (a *statusRecordingAC) UpdateActionResult(ctx context.Context, action digest.Digest, ar *repb.ActionResult) error {
	err := a.base.UpdateActionResult(ctx, action, ar)
	note(a.rec, err, false)
	return err
}

// GetMany passes the batch on to base; the first entry error that is not
// NOT_FOUND is recorded. A batch of digests whose function the remote
// does not take, none of which was asked, is not recorded.
func (c *statusRecordingCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := c.base.GetMany(ctx, ds)
	var failure error
	asked := false
	for _, r := range out {
		asked = asked || !store.IsUnsupportedFunction(r.Err)
		if r.Err != nil && status.Code(r.Err) != codes.NotFound {
			failure = r.Err
			break
		}
	}
	if asked {
		note(c.rec, failure, true)
	}
	return out
}
