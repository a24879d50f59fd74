package disk_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// openStore opens a store in dir and closes it when the test ends.
func openStore(t testing.TB, dir string, opts disk.Options) *disk.Store {
	t.Helper()
	l, err := disk.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// waitReady waits for the background load and reconciliation.
func waitReady(t testing.TB, l *disk.Store) {
	t.Helper()
	select {
	case <-l.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("store not ready after 30s")
	}
}

// blob returns n pseudo-random bytes (distinct per seed) and their digest.
func blob(n int, seed uint64) ([]byte, digest.Digest) {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, digest.OfBytes(b)
}

func put(t testing.TB, cas store.CAS, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(b)
	if err := cas.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put(%s): %v", d, err)
	}
	return d
}

// read fetches d from offset to the end.
func read(cas store.CAS, d digest.Digest, offset int64) ([]byte, error) {
	rc, err := cas.Get(context.Background(), d, offset)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func present(t testing.TB, cas store.CAS, d digest.Digest) bool {
	t.Helper()
	missing, err := cas.FindMissing(context.Background(), []digest.Digest{d})
	if err != nil {
		t.Fatalf("FindMissing: %v", err)
	}
	return len(missing) == 0
}
