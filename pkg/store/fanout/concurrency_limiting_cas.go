package fanout

import (
	"context"
	"io"
	"sync"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// NewConcurrencyLimitingCAS lets at most limit calls into base run at once;
// further callers queue in arrival order (FIFO) and give up when their
// context ends (CANCELED or DEADLINE_EXCEEDED). A Get holds its slot until
// the reader is closed, so a slow download counts for its whole length; a
// GetMany holds one slot for its whole batch when base reads batches. Use
// it in front of each remote so that a burst of misses cannot open
// thousands of streams to one server. Cost: one semaphore acquire per call.
// Safe for concurrent use.
func NewConcurrencyLimitingCAS(base store.CAS, limit int) store.CAS {
	return &concurrencyLimitingCAS{base: base, sem: semaphore.NewWeighted(int64(limit))}
}

type concurrencyLimitingCAS struct {
	base store.CAS
	sem  *semaphore.Weighted
}

func (c *concurrencyLimitingCAS) acquire(ctx context.Context) error {
	if err := c.sem.Acquire(ctx, 1); err != nil {
		return status.FromContextError(err).Err()
	}
	return nil
}

func (c *concurrencyLimitingCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.sem.Release(1)
	return c.base.FindMissing(ctx, ds)
}

func (c *concurrencyLimitingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	rc, err := c.base.Get(ctx, d, offset)
	if err != nil {
		c.sem.Release(1)
		return nil, err
	}
	return &releasingReader{ReadCloser: rc, release: func() { c.sem.Release(1) }}, nil
}

// GetMany implements store.BatchGetter: one slot for the whole batch when
// base reads batches itself, else one Get (and slot) per digest.
func (c *concurrencyLimitingCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	bg, ok := c.base.(store.BatchGetter)
	if !ok {
		return store.GetEach(ctx, c, ds)
	}
	if err := c.acquire(ctx); err != nil {
		return failAll(len(ds), err)
	}
	defer c.sem.Release(1)
	return bg.GetMany(ctx, ds)
}

func (c *concurrencyLimitingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.sem.Release(1)
	return c.base.Put(ctx, d, r)
}

// releasingReader gives the semaphore slot back on the first Close.
type releasingReader struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *releasingReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}
