package writeback

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/proxy/asset"
	"github.com/castd/castd/pkg/store"
)

// NewQueueingCAS returns base whose successful Puts are queued for push to
// targets before Put returns, so that a write acknowledged to a client has
// its pushes on disk. Use it in front of the fan-out of a project with
// push remotes; with no targets it returns base. Cost per Put: one badger
// write per target (skipped when the same push is pending). Reads pass
// through. Safe for concurrent use.
func NewQueueingCAS(base store.CAS, q *Queue, targets []Target) store.CAS {
	if len(targets) == 0 {
		return base
	}
	return &queueingCAS{CAS: base, q: q, targets: targets}
}

type queueingCAS struct {
	store.CAS
	q       *Queue
	targets []Target
}

func (c *queueingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if err := c.CAS.Put(ctx, d, r); err != nil {
		return err
	}
	return c.q.Enqueue(ctx, KindBlob, d, "", c.targets)
}

// PutBytes implements store.BytesPutter: base's no-copy path, then queued.
func (c *queueingCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte) error {
	if err := store.PutBytes(ctx, c.CAS, d, data); err != nil {
		return err
	}
	return c.q.Enqueue(ctx, KindBlob, d, "", c.targets)
}

// GetBytes and GetMany pass reads on to base's fast paths: wrapping for
// writes must not slow down reads.
func (c *queueingCAS) GetBytes(ctx context.Context, d digest.Digest) ([]byte, error) {
	return store.ReadBytes(ctx, c.CAS, d)
}

// GetMany implements store.BatchGetter over base.
func (c *queueingCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return store.GetMany(ctx, c.CAS, ds)
}

// NewQueueingActionCache is NewQueueingCAS for an instance's action cache:
// a successful UpdateActionResult is queued for targets (the result is read
// back from base's local store at push time, with the blobs it references
// pushed first). With no targets it returns base.
func NewQueueingActionCache(base store.ActionCache, q *Queue, instance string, targets []Target) store.ActionCache {
	if len(targets) == 0 {
		return base
	}
	return &queueingAC{ActionCache: base, q: q, instance: instance, targets: targets}
}

type queueingAC struct {
	store.ActionCache
	q        *Queue
	instance string
	targets  []Target
}

func (a *queueingAC) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	if err := a.ActionCache.UpdateActionResult(ctx, action, result); err != nil {
		return err
	}
	return a.q.Enqueue(ctx, KindActionResult, action, a.instance, a.targets)
}

// NewQueueingIndex is NewQueueingCAS for an instance's Remote Asset index:
// a successful Record (a client's Push) is queued for targets, content
// first. With no targets it returns base.
func NewQueueingIndex(base asset.Index, q *Queue, targets []Target) asset.Index {
	if len(targets) == 0 {
		return base
	}
	return &queueingIndex{Index: base, q: q, targets: targets}
}

type queueingIndex struct {
	asset.Index
	q       *Queue
	targets []Target
}

func (x *queueingIndex) Record(ctx context.Context, a asset.Asset, ref asset.Ref) error {
	if err := x.Index.Record(ctx, a, ref); err != nil {
		return err
	}
	return x.q.EnqueueAsset(ctx, a, ref, x.targets)
}
