package disk_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalGroupCommitConcurrentPutsSurviveReopen(t *testing.T) {
	// Why: Puts grouped into shared commits are each acknowledged only once
	// committed, so every one of them is there after a restart.
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs := make([][]byte, 2000)
	var g errgroup.Group
	g.SetLimit(64)
	for i := range blobs {
		size := []int{0, 1, 300, 4 << 10, 16 << 10, 40 << 10}[i%6] // inline and file blobs
		blobs[i], _ = blob(size, uint64(i))
		g.Go(func() error {
			return l.Put(context.Background(), digest.OfBytes(blobs[i]), bytes.NewReader(blobs[i]))
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent Put: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openStore(t, dir, disk.Options{})
	for _, b := range blobs {
		if got, err := read(l, digest.OfBytes(b), 0); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %s after reopen: %d bytes, %v", digest.OfBytes(b), len(got), err)
		}
	}
}

func TestLocalGroupCommitFailureFailsEveryPut(t *testing.T) {
	// Why: a group that cannot be written must fail every Put in it and
	// leave none of them visible; the blobs can be stored again later.
	l := openStore(t, t.TempDir(), disk.Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	var once sync.Once
	disk.SetBeforeCommitForTest(l, func(n int) error {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		once.Do(func() { close(entered); <-release })
		return errors.New("disk on fire")
	})
	first, _ := blob(100, 1000)
	firstErr := make(chan error, 1)
	go func() { firstErr <- l.Put(context.Background(), digest.OfBytes(first), bytes.NewReader(first)) }()
	<-entered // the first group is being written; the next Puts queue up behind it
	blobs := make([][]byte, 8)
	errs := make(chan error, len(blobs))
	for i := range blobs {
		blobs[i], _ = blob(1000+i, uint64(i))
		go func() { errs <- l.Put(context.Background(), digest.OfBytes(blobs[i]), bytes.NewReader(blobs[i])) }()
	}
	testutil.Eventually(t, "every commit queued", func() bool { return disk.QueuedCommitsForTest(l) == len(blobs) })
	close(release)
	if err := <-firstErr; err == nil {
		t.Fatal("Put in the first failing group succeeded")
	}
	for range blobs {
		if err := <-errs; err == nil {
			t.Fatal("Put in a failing group succeeded")
		}
	}
	mu.Lock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != len(blobs) {
		t.Fatalf("group sizes = %v, want [1 %d]", sizes, len(blobs))
	}
	mu.Unlock()
	for _, b := range append(blobs, first) {
		if present(t, l, digest.OfBytes(b)) {
			t.Fatalf("blob %s of a failed group is visible", digest.OfBytes(b))
		}
	}
	disk.SetBeforeCommitForTest(l, nil)
	for _, b := range blobs {
		put(t, l, b)
	}
	if st := l.Stats(); st.Objects != int64(len(blobs)) {
		t.Fatalf("Objects = %d after storing again, want %d", st.Objects, len(blobs))
	}
}

func TestLocalPutAfterCloseFails(t *testing.T) {
	// Why: once the committer has stopped, a Put fails instead of waiting forever.
	l, err := disk.Open(t.TempDir(), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, d := blob(100, 1)
	if err := l.Put(context.Background(), d, bytes.NewReader(b)); err == nil {
		t.Fatal("Put after Close succeeded")
	}
}
