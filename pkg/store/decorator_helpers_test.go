package store_test

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// observedCAS is a memory store that tells the test about each call before
// serving it (onFind with the digests asked about, onGet with the digest
// read); while down is set every call fails with UNAVAILABLE, as an
// unreachable remote's would. Wrap it in store.WithGenericFastPaths to
// observe the fast paths too.
type observedCAS struct {
	mem    *store.Memory
	onFind func(ds []digest.Digest)
	onGet  func(d digest.Digest)
	down   atomic.Bool
}

func (o *observedCAS) unreachable() error {
	if o.down.Load() {
		return status.Error(codes.Unavailable, "connection refused")
	}
	return nil
}

func (o *observedCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if o.onFind != nil {
		o.onFind(ds)
	}
	if err := o.unreachable(); err != nil {
		return nil, err
	}
	return o.mem.FindMissing(ctx, ds)
}

func (o *observedCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if o.onGet != nil {
		o.onGet(d)
	}
	if err := o.unreachable(); err != nil {
		return nil, err
	}
	return o.mem.Get(ctx, d, offset)
}

func (o *observedCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if err := o.unreachable(); err != nil {
		return err
	}
	return o.mem.Put(ctx, d, r)
}

// settableClock is a clock the test moves by hand; one goroutine only.
type settableClock struct{ now time.Time }

func (c *settableClock) Now() time.Time { return c.now }
