package writeback_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// openStore opens a local store in dir, closed when t ends.
func openStore(t *testing.T, dir string) *disk.Store {
	t.Helper()
	s, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	<-s.Ready()
	return s
}

// putRandom stores a random blob of n bytes in cas and returns its digest.
func putRandom(t *testing.T, cas store.CAS, n int) digest.Digest {
	t.Helper()
	d, err := putRandomErr(cas, n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// putRandomErr is putRandom returning the Put's error.
func putRandomErr(cas store.CAS, n int) (digest.Digest, error) {
	data := make([]byte, n)
	_, _ = rand.Read(data)
	d := digest.OfBytes(data)
	return d, cas.Put(context.Background(), d, bytes.NewReader(data))
}

// flakyRemote is an in-memory remote that fails with UNAVAILABLE while
// down is set, and records the order of arrivals.
type flakyRemote struct {
	*store.Memory
	down atomic.Bool

	mu    sync.Mutex
	order []string // "blob HASH" or "ac HASH", in arrival order
}

func newFlakyRemote() *flakyRemote { return &flakyRemote{Memory: store.NewMemory()} }

func (f *flakyRemote) fail() error {
	if f.down.Load() {
		return status.Error(codes.Unavailable, "remote down")
	}
	return nil
}

func (f *flakyRemote) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Memory.FindMissing(ctx, ds)
}

func (f *flakyRemote) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if err := f.fail(); err != nil {
		return err
	}
	f.record("blob " + d.Hash)
	return f.Memory.Put(ctx, d, r)
}

func (f *flakyRemote) record(s string) {
	f.mu.Lock()
	f.order = append(f.order, s)
	f.mu.Unlock()
}

func (f *flakyRemote) has(d digest.Digest) bool {
	m, err := f.Memory.FindMissing(context.Background(), []digest.Digest{d})
	return err == nil && len(m) == 0
}
