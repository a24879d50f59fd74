package fanout_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// blob returns the digest and bytes of s.
func blob(s string) (digest.Digest, []byte) {
	return digest.OfBytes([]byte(s)), []byte(s)
}

// memoryWith returns a memory store holding each of contents.
func memoryWith(t testing.TB, contents ...string) *store.Memory {
	t.Helper()
	m := store.NewMemory()
	for _, s := range contents {
		d, b := blob(s)
		if err := m.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// readAll reads d at offset from c.
func readAll(ctx context.Context, c store.CAS, d digest.Digest, offset int64) (string, error) {
	rc, err := c.Get(ctx, d, offset)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// has reports whether c holds d.
func has(t testing.TB, c store.CAS, d digest.Digest) bool {
	t.Helper()
	missing, err := c.FindMissing(context.Background(), []digest.Digest{d})
	if err != nil {
		t.Fatal(err)
	}
	return len(missing) == 0
}

// callLog records which tier was called, in order, across tiers.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// countingCAS counts calls into base and records them in log as
// "NAME.Get" / "NAME.FindMissing", keeping each FindMissing request.
type countingCAS struct {
	store.BasicCAS
	name  string
	log   *callLog
	gets  atomic.Int64
	mu    sync.Mutex
	finds [][]digest.Digest
}

func (c *countingCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	c.log.add(c.name + ".FindMissing")
	c.mu.Lock()
	c.finds = append(c.finds, append([]digest.Digest(nil), ds...))
	c.mu.Unlock()
	return c.BasicCAS.FindMissing(ctx, ds)
}

func (c *countingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	c.log.add(c.name + ".Get")
	c.gets.Add(1)
	return c.BasicCAS.Get(ctx, d, offset)
}

func (c *countingCAS) requests() [][]digest.Digest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]digest.Digest(nil), c.finds...)
}

// downCAS is a remote that is unreachable: every call is UNAVAILABLE.
type downCAS struct{}

func (downCAS) FindMissing(context.Context, []digest.Digest) ([]digest.Digest, error) {
	return nil, status.Error(codes.Unavailable, "connection refused")
}

func (downCAS) Get(context.Context, digest.Digest, int64) (io.ReadCloser, error) {
	return nil, status.Error(codes.Unavailable, "connection refused")
}

func (downCAS) Put(context.Context, digest.Digest, io.Reader) error {
	return status.Error(codes.Unavailable, "connection refused")
}

func (d downCAS) GetWith(ctx context.Context, dg digest.Digest, offset int64, _ store.GetHint) (io.ReadCloser, error) {
	return d.Get(ctx, dg, offset)
}

func (d downCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return store.GetEach(ctx, d, ds)
}

func (d downCAS) PutWith(ctx context.Context, dg digest.Digest, r io.Reader, _ store.PutHint) error {
	return d.Put(ctx, dg, r)
}

func (d downCAS) PutBytes(ctx context.Context, dg digest.Digest, _ []byte, _ store.PutHint) error {
	return d.Put(ctx, dg, nil)
}

// corruptCAS serves base's bytes with the first byte flipped.
type corruptCAS struct{ store.BasicCAS }

func (c corruptCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := c.BasicCAS.Get(ctx, d, offset)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 {
		b[0] ^= 0xff
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// blockingCAS holds every Get until release is closed (or the caller's
// context ends), signalling entered on each Get first.
type blockingCAS struct {
	store.BasicCAS
	entered chan struct{}
	release chan struct{}
}

func newBlockingCAS(base store.BasicCAS) *blockingCAS {
	return &blockingCAS{BasicCAS: base, entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blockingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return b.BasicCAS.Get(ctx, d, offset)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// flakyPutCAS fails its first n Puts with INTERNAL (a local disk error).
type flakyPutCAS struct {
	store.BasicCAS
	failures atomic.Int64
}

func (f *flakyPutCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if f.failures.Add(-1) >= 0 {
		return status.Error(codes.Internal, "disk on fire")
	}
	return f.BasicCAS.Put(ctx, d, r)
}

// downAC is an unreachable action cache.
type downAC struct{}

func (downAC) GetActionResult(context.Context, digest.Digest) (*repb.ActionResult, error) {
	return nil, status.Error(codes.Unavailable, "connection refused")
}

func (downAC) UpdateActionResult(context.Context, digest.Digest, *repb.ActionResult) error {
	return status.Error(codes.Unavailable, "connection refused")
}

// countingAC counts GetActionResult and UpdateActionResult calls.
type countingAC struct {
	store.ActionCache
	gets, updates atomic.Int64
}

func (c *countingAC) GetActionResult(ctx context.Context, a digest.Digest) (*repb.ActionResult, error) {
	c.gets.Add(1)
	return c.ActionCache.GetActionResult(ctx, a)
}

func (c *countingAC) UpdateActionResult(ctx context.Context, a digest.Digest, r *repb.ActionResult) error {
	c.updates.Add(1)
	return c.ActionCache.UpdateActionResult(ctx, a, r)
}

// metricValue returns the counter name{label=value} (any label name) in
// reg, or 0 when the series does not exist.
func metricValue(t testing.TB, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
			if value == "" && len(m.GetLabel()) == 0 {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
