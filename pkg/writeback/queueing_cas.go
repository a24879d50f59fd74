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
	return &queueingCAS{CAS: base, q: q, targets: targets}
}

type queueingCAS struct {
	store.CAS
	q       *Queue
	targets []Target
}

func (c *queueingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	defer c.q.holdBlob(d)()
	if err := c.CAS.Put(ctx, d, r); err != nil {
		return err
	}
	return c.q.Enqueue(ctx, KindBlob, d, "", c.targets)
}

// PutBytes implements store.BytesPutter: base's no-copy path, then queued.
func (c *queueingCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte) error {
	defer c.q.holdBlob(d)()
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
