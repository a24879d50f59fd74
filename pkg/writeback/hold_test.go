package writeback_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/writeback"

	"github.com/castd/castd/pkg/store/disk"
)

// openQuotaStore opens a local store in dir with quota bytes, closed when
// t ends (Close is idempotent, so a test may close it earlier).
func openQuotaStore(t *testing.T, dir string, quota int64) *disk.Store {
	t.Helper()
	s, err := disk.Open(dir, disk.Options{QuotaBytes: quota, LowWatermark: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	<-s.Ready()
	return s
}

func TestQueueKeepsQueuedBlobsThroughEviction(t *testing.T) {
	// Why: blobs waiting for a down remote must survive the eviction that
	// other writes cause, so every acknowledged push arrives once the
	// remote is back (the old queue gave up: "no longer in the local store").
	const size = 20 << 10
	s := openQuotaStore(t, t.TempDir(), 10*size)
	remote := newFlakyRemote()
	remote.down.Store(true)
	q := newQueue(t, s, remote, writeback.Options{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	cas := writeback.NewQueueingCAS(s, q, userTarget)
	var queued []digest.Digest
	for range 4 {
		queued = append(queued, putRandom(t, cas, size))
	}
	for range 12 { // unqueued writes: eviction must run several times
		putRandom(t, s, size)
	}
	if st := s.Stats(); st.Evictions == 0 {
		t.Fatalf("no eviction ran (Stats %+v): the test proves nothing", st)
	}
	if missing, _ := s.FindMissing(context.Background(), queued); len(missing) != 0 {
		t.Fatalf("queued blobs evicted: %v", missing)
	}
	if got := q.Stats().HeldBytes; got != 4*size {
		t.Errorf("HeldBytes = %d, want %d", got, 4*size)
	}
	remote.down.Store(false)
	testutil.Eventually(t, "every queued blob pushed", func() bool { return q.Stats().Depth == 0 })
	for _, d := range queued {
		if !remote.has(d) {
			t.Errorf("queued blob %s never arrived", d)
		}
	}
	if got := q.Stats().HeldBytes; got != 0 {
		t.Errorf("HeldBytes after the pushes = %d, want 0 (holds released)", got)
	}
}

func TestQueueFullOfHeldBlobsRefusesWritesAcrossRestart(t *testing.T) {
	// Why: when what is queued fills the quota, a new write is refused
	// with a code clients do not retry, naming the queue, instead of being
	// acknowledged and later dropped; the holds are taken again when the
	// queue reloads its entries after a restart.
	const size = 20 << 10
	dir := t.TempDir()
	s := openQuotaStore(t, dir, 5*size)
	remote := newFlakyRemote()
	remote.down.Store(true)
	q := newQueue(t, s, remote, writeback.Options{BackoffMin: time.Hour})
	cas := writeback.NewQueueingCAS(s, q, userTarget)
	var queued []digest.Digest
	for range 5 {
		queued = append(queued, putRandom(t, cas, size))
	}
	refused := func(what string, cas store.CAS) {
		t.Helper()
		_, err := putRandomErr(cas, size)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "write-back queue") {
			t.Fatalf("%s: write over a quota full of queued blobs = %v, want FAILED_PRECONDITION naming the write-back queue", what, err)
		}
	}
	refused("first run", cas)
	if left := q.Close(10 * time.Millisecond); left != 5 {
		t.Fatalf("Close left %d entries, want 5", left)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openQuotaStore(t, dir, 5*size)
	q2 := newQueue(t, s2, remote, writeback.Options{BackoffMin: time.Hour})
	refused("after restart", s2) // even unqueued writes: nothing may be evicted
	if missing, _ := s2.FindMissing(context.Background(), queued); len(missing) != 0 {
		t.Fatalf("queued blobs lost across the restart: %v", missing)
	}
	if got := q2.Stats().HeldBytes; got != 5*size {
		t.Errorf("HeldBytes after restart = %d, want %d", got, 5*size)
	}
}
