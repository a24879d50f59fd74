package writeback

import (
	"context"
	"io"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// NewQueueingCAS returns base whose successful Puts are queued for push to
// targets before Put returns, so that a write acknowledged to a client has
// its pushes on disk. Use it in front of the fan-out of a project with
// push remotes; with no targets it returns base. Cost per Put: one badger
// write per target (skipped when the same push is pending). Reads pass
// through. The blob is held against eviction from before the write until
// its push is done; when held blobs fill the quota the local store refuses
// the write with FAILED_PRECONDITION naming the queue. Safe for concurrent
// use.
func NewQueueingCAS(base store.CAS, q *Queue, targets []Target) store.CAS {
	if len(targets) == 0 {
		return base
	}
	return &queueingCAS{base: base, q: q, targets: targets}
}

type queueingCAS struct {
	base    store.CAS
	q       *Queue
	targets []Target
}

// Reads pass on to base's own methods, fast paths included: wrapping for
// writes must not slow down reads.
func (c *queueingCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return c.base.FindMissing(ctx, ds)
}

func (c *queueingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.base.Get(ctx, d, offset)
}

func (c *queueingCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	return c.base.GetWith(ctx, d, offset, hint)
}

func (c *queueingCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return c.base.GetMany(ctx, ds)
}

// Every write, whichever method, is held, stored by base and queued.
func (c *queueingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, store.PutHint{})
}

func (c *queueingCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	defer c.q.holdBlob(d)()
	return c.queued(ctx, d, c.base.PutWith(ctx, d, r, hint))
}

func (c *queueingCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	defer c.q.holdBlob(d)()
	return c.queued(ctx, d, c.base.PutBytes(ctx, d, data, hint))
}

// queued queues the push of d once base has stored it (err is nil).
func (c *queueingCAS) queued(ctx context.Context, d digest.Digest, err error) error {
	if err != nil {
		return err
	}
	return c.q.Enqueue(ctx, KindBlob, d, "", c.targets)
}
