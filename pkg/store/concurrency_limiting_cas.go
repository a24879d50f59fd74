package store

import (
	"context"
	"io"
	"sync"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// NewConcurrencyLimitingCAS lets at most limit calls into base run at once;
// further callers queue in arrival order (FIFO) and give up when their
// context ends (CANCELED or DEADLINE_EXCEEDED). A Get holds its slot until
// the reader is closed, so a slow download counts for its whole length; a
// GetMany holds one slot for its whole batch (base reads it as one call).
// Every method of CAS, fast paths included, takes a slot. Use
// it in front of each remote so that a burst of misses cannot open
// thousands of streams to one server. Cost: one semaphore acquire per call.
// Safe for concurrent use.
func NewConcurrencyLimitingCAS(base CAS, limit int) CAS {
	return &concurrencyLimitingCAS{base: base, sem: semaphore.NewWeighted(int64(limit))}
}

type concurrencyLimitingCAS struct {
	base CAS
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
	return c.GetWith(ctx, d, offset, GetHint{})
}

func (c *concurrencyLimitingCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint GetHint) (io.ReadCloser, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	rc, err := c.base.GetWith(ctx, d, offset, hint)
	if err != nil {
		c.sem.Release(1)
		return nil, err
	}
	return &releasingReader{ReadCloser: rc, release: func() { c.sem.Release(1) }}, nil
}

// GetMany holds one slot for the whole batch.
func (c *concurrencyLimitingCAS) GetMany(ctx context.Context, ds []digest.Digest) []BlobResult {
	if err := c.acquire(ctx); err != nil {
		return FailAll(len(ds), err)
	}
	defer c.sem.Release(1)
	return c.base.GetMany(ctx, ds)
}

func (c *concurrencyLimitingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, PutHint{})
}

func (c *concurrencyLimitingCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint PutHint) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.sem.Release(1)
	return c.base.PutWith(ctx, d, r, hint)
}

func (c *concurrencyLimitingCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint PutHint) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.sem.Release(1)
	return c.base.PutBytes(ctx, d, data, hint)
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
