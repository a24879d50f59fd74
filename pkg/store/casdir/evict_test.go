package casdir_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/casdir"
)

// putAt stores blobs i..j-1 of size bytes, advancing clk before each, and
// returns their digests.
func putAt(t *testing.T, s *casdir.Store, clk *clock, i, j, size int) []digest.Digest {
	t.Helper()
	var ds []digest.Digest
	for k := i; k < j; k++ {
		clk.Advance()
		b, _ := blob(k, size)
		ds = append(ds, put(t, s, b))
	}
	return ds
}

// present returns the digests of ds whose files are on disk.
func present(t *testing.T, dir string, ds []digest.Digest) digest.Set {
	t.Helper()
	out := digest.NewSet()
	for _, d := range ds {
		if exists(t, objectPath(dir, d)) {
			out.Add(d)
		}
	}
	return out
}

func TestEvictionRemovesLeastRecentlyUsedDownToQuotaLow(t *testing.T) {
	// Over --quota-high, a pass evicts by last use down to --quota-low.
	dir := t.TempDir()
	clk := newClock()
	s := open(t, dir, casdir.Options{QuotaHigh: 1000, QuotaLow: 500, Now: clk.Now})
	ds := putAt(t, s, clk, 0, 10, 100) // exactly the quota
	if got := present(t, dir, ds); len(got) != 10 {
		t.Fatalf("%d of 10 blobs present before the quota is passed", len(got))
	}
	// Uses make blobs 0 (FindMissing) and 1 (Get) recent again.
	clk.Advance()
	missing(t, s, ds[0])
	if _, err := read(s, ds[1], 0); err != nil {
		t.Fatal(err)
	}
	// One more blob passes the quota: the pass evicts down to 500 bytes,
	// oldest use first: blobs 2..6.
	last := putAt(t, s, clk, 10, 11, 100)[0]
	want := digest.NewSet(ds[0], ds[1], ds[7], ds[8], ds[9], last)
	if got := present(t, dir, append(ds, last)); len(got) != len(want) || len(got.Difference(want)) != 0 {
		t.Fatalf("present after eviction: %v, want %v", got.Sorted(), want.Sorted())
	}
	if u, disk := usage(t, s), onDisk(t, dir); u != 600 || disk != 600 {
		t.Fatalf("usage %d, on disk %d; want 600 (quota-low 500, then the new blob)", u, disk)
	}
}

func TestBlobLargerThanTheQuotaIsRejected(t *testing.T) {
	// It can never fit: a deterministic refusal, not "try again".
	s := open(t, t.TempDir(), casdir.Options{QuotaHigh: 100})
	b, d := blob(1, 101)
	wantCode(t, s.Put(context.Background(), d, bytesReader(b)), codes.FailedPrecondition)
}

func TestReservedSpaceIsKeptFree(t *testing.T) {
	// A filesystem of 10,000 bytes of which 9,000 must stay free.
	dir := t.TempDir()
	clk := newClock()
	const capacity, reserved = 10_000, 9_000
	free := func() (int64, error) { return capacity - onDisk(t, dir), nil }
	s := open(t, dir, casdir.Options{Reserved: reserved, Now: clk.Now, DiskFree: free})
	var ds []digest.Digest
	for i := range 30 {
		ds = append(ds, putAt(t, s, clk, i, i+1, 100)...)
		if f, _ := free(); f < reserved {
			t.Fatalf("after Put %d: %d bytes free, want at least %d", i, f, reserved)
		}
	}
	got := present(t, dir, ds)
	if got.Has(ds[0]) || !got.Has(ds[29]) {
		t.Fatalf("present: %d blobs, first %v, last %v: want the oldest evicted and the newest kept", len(got), got.Has(ds[0]), got.Has(ds[29]))
	}
}

func TestSessionBlobsAreProtected(t *testing.T) {
	// BuildStream always passes --protect-session-blobs: what a command
	// wrote or was told exists must stay until it ends, whoever evicts.
	dir := t.TempDir()
	clk := newClock()
	opts := casdir.Options{QuotaHigh: 1000, QuotaLow: 500, Now: clk.Now}

	// An earlier command's blobs, its daemon gone.
	old := open(t, dir, opts)
	oldDs := putAt(t, old, clk, 0, 5, 100)
	old.Close()

	// The running command: blobs it wrote and a blob it was told exists.
	clk.Advance()
	protected := opts
	protected.ProtectSessionBlobs = true
	a := open(t, dir, protected)
	aDs := putAt(t, a, clk, 5, 10, 100)
	clk.Advance()
	if m := missing(t, a, oldDs[4]); len(m) != 0 {
		t.Fatal("old blob 4 missing")
	}

	// A second daemon on the directory passes the quota: only the old
	// blobs not used by the running session may go.
	b := open(t, dir, opts)
	bDs := putAt(t, b, clk, 10, 11, 100)
	got := present(t, dir, append(append(append([]digest.Digest{}, oldDs...), aDs...), bDs...))
	for _, d := range append(aDs, oldDs[4]) {
		if !got.Has(d) {
			t.Fatalf("a blob of the running session was evicted: %s", d)
		}
	}
	for _, d := range oldDs[:4] {
		if got.Has(d) {
			t.Fatalf("old blob %s kept while over the quota", d)
		}
	}

	// Everything left is protected: the store is too full.
	for i := 11; ; i++ {
		clk.Advance()
		bl, d := blob(i, 100)
		err := b.Put(context.Background(), d, bytesReader(bl))
		if err != nil {
			wantCode(t, err, codes.ResourceExhausted)
			break
		}
		if i > 20 {
			t.Fatal("Puts kept succeeding over a quota filled by protected blobs")
		}
	}

	// The session ends: its blobs become ordinary, oldest first.
	a.Close()
	clk.Advance()
	putAt(t, b, clk, 100, 101, 100)
	if present(t, dir, aDs).Has(aDs[0]) {
		t.Fatal("the ended session's oldest blob is still protected")
	}
}

func TestDeadSessionDoesNotProtect(t *testing.T) {
	// A daemon killed with SIGKILL leaves its session file behind, unlocked.
	dir := t.TempDir()
	clk := newClock()
	opts := casdir.Options{QuotaHigh: 500, QuotaLow: 200, Now: clk.Now}
	s := open(t, dir, opts)
	ds := putAt(t, s, clk, 0, 5, 100)
	dead := filepath.Join(dir, "cas", "castd", "sessions", "1.99999.0")
	if err := os.WriteFile(dead, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	putAt(t, s, clk, 5, 6, 100)
	if present(t, dir, ds).Has(ds[0]) {
		t.Fatal("a dead session's file protected every blob")
	}
	if exists(t, dead) {
		t.Fatal("the dead session's file was not removed")
	}
}

func TestPassRemovesStaleTemporaryFiles(t *testing.T) {
	// A daemon killed mid-write leaves its temporary file; a write in
	// progress keeps its file fresh and must not lose it.
	dir := t.TempDir()
	clk := newClock()
	s := open(t, dir, casdir.Options{QuotaHigh: 500, QuotaLow: 200, Now: clk.Now})
	stale, fresh := filepath.Join(dir, "cas", "tmp", "put-stale"), filepath.Join(dir, "cas", "tmp", "put-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	putAt(t, s, clk, 0, 6, 100) // the sixth passes the quota
	if exists(t, stale) || !exists(t, fresh) {
		t.Fatalf("after a pass: stale file there %v, fresh file there %v; want only the fresh one", exists(t, stale), exists(t, fresh))
	}
}

func TestUseRecordsTimeOnlyWhenProtectionNeedsIt(t *testing.T) {
	// BuildStream asks again and again about what it stored: a blob used
	// in the running protecting session is protected already and keeps its
	// time (an lstat, not an inode write); an older blob is touched.
	dir := t.TempDir()
	clk := newClock()
	old := open(t, dir, casdir.Options{Now: clk.Now})
	before := putAt(t, old, clk, 0, 1, 100)[0]
	old.Close()
	clk.Advance()
	s := open(t, dir, casdir.Options{ProtectSessionBlobs: true, Now: clk.Now})
	mine := putAt(t, s, clk, 1, 2, 100)[0]
	written := mtime(t, objectPath(dir, mine))
	clk.Advance()
	if m := missing(t, s, before, mine); len(m) != 0 {
		t.Fatalf("%d missing", len(m))
	}
	if got := mtime(t, objectPath(dir, mine)); !got.Equal(written) {
		t.Fatalf("the session's own blob was touched again: %v, was %v", got, written)
	}
	if got := mtime(t, objectPath(dir, before)); !got.Equal(clk.Now()) {
		t.Fatalf("a blob from before the session has time %v, want the use at %v", got, clk.Now())
	}
}

func mtime(t *testing.T, path string) time.Time {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}
