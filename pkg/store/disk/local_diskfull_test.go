package disk_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/internal/testutil"

	"github.com/castd/castd/pkg/store/disk"
)

// wantCode checks that err has code and mentions the filesystem state.
func wantCode(t *testing.T, what string, err error, code codes.Code, words string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), words) {
		t.Errorf("%s = %v, want %v saying %q", what, err, code, words)
	}
}

func TestLocalDiskFull(t *testing.T) {
	ctx := context.Background()
	fs := testutil.MountTmpfs(t, "256m")
	dir := filepath.Join(fs, "store")
	small, large := []byte("stored before the disk filled"), bytes.Repeat([]byte("large "), 200_000)
	action := digest.OfBytes([]byte("action"))
	result := &repb.ActionResult{ExitCode: 3}

	// castd's default reserve (5 %) is far below the free-space margin on
	// this small filesystem: the refusal must come before any eviction.
	reg := prometheus.NewRegistry()
	l, err := disk.Open(dir, disk.Options{ReservedPercent: 5, Registerer: reg, Ballast: true})
	if err != nil {
		t.Fatal(err)
	}
	put(t, l, small)
	put(t, l, large)
	if err := l.ActionCache("").UpdateActionResult(ctx, action, result); err != nil {
		t.Fatal(err)
	}
	readsServed := func(t *testing.T, l *disk.Store) {
		t.Helper()
		for _, b := range [][]byte{small, large} {
			if got, err := read(l, digest.OfBytes(b), 0); err != nil || !bytes.Equal(got, b) {
				t.Errorf("Get of a stored blob: %d bytes, %v", len(got), err)
			}
		}
		if got, err := l.ActionCache("").GetActionResult(ctx, action); err != nil || got.GetExitCode() != 3 {
			t.Errorf("GetActionResult = %v, %v", got, err)
		}
	}

	t.Run("filled while running", func(t *testing.T) {
		t.Log("another process fills the disk: writes fail clearly (badger must not write into unbacked pages), reads go on")
		free := testutil.FillFS(t, fs)
		defer free()
		// The guard reuses a reading of the free space for 100 ms (a fast
		// machine fills this filesystem in less): the writes come after.
		disk.AgeFreeSpaceReadingForTest(l)
		nb, nd := blob(100, 1)
		wantCode(t, "Put small", l.Put(ctx, nd, bytes.NewReader(nb)), codes.ResourceExhausted, "filesystem full")
		lb, ld := blob(1<<20, 2)
		wantCode(t, "Put large", l.Put(ctx, ld, bytes.NewReader(lb)), codes.ResourceExhausted, "filesystem full")
		wantCode(t, "UpdateActionResult", l.ActionCache("").UpdateActionResult(ctx, digest.OfBytes(nb), result), codes.ResourceExhausted, "filesystem full")
		if present(t, l, nd) || present(t, l, ld) {
			t.Error("a refused blob is reported present")
		}
		readsServed(t, l)
		if v := testutil.MetricValue(t, reg, "castd_store_writes_refused"); v != 1 {
			t.Errorf("castd_store_writes_refused = %v, want 1 (filesystem full)", v)
		}
	})
	t.Run("space freed while running", func(t *testing.T) {
		t.Log("the refusal lasts only as long as the disk is full: no restart needed")
		put(t, l, []byte("after space came back"))
		if v := testutil.MetricValue(t, reg, "castd_store_writes_refused"); v != 0 {
			t.Errorf("castd_store_writes_refused = %v, want 0", v)
		}
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("restarted on a full disk", func(t *testing.T) {
		t.Log("a store opened on a full disk gives badger the ballast and comes up; writes wait for space, no restart needed")
		free := testutil.FillFS(t, fs)
		l, err := disk.Open(dir, disk.Options{ReservedPercent: 5, Ballast: true})
		if err != nil {
			t.Fatalf("Open on a full disk: %v", err)
		}
		readsServed(t, l)
		nb, nd := blob(100, 3)
		wantCode(t, "Put", l.Put(ctx, nd, bytes.NewReader(nb)), codes.ResourceExhausted, "filesystem full")
		free()
		put(t, l, nb)
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	t.Run("restarted on a full disk without ballast", func(t *testing.T) {
		t.Log("with no space to give badger at all, the store opens read-only and serves what it has")
		if err := os.Remove(filepath.Join(dir, "ballast")); err != nil {
			t.Fatalf("the ballast should be back once space was: %v", err)
		}
		free := testutil.FillFS(t, fs)
		reg := prometheus.NewRegistry()
		ro, err := disk.Open(dir, disk.Options{Registerer: reg})
		if err != nil {
			t.Fatalf("Open on a full disk: %v", err)
		}
		readsServed(t, ro)
		if v := testutil.MetricValue(t, reg, "castd_store_writes_refused"); v != 2 {
			t.Errorf("castd_store_writes_refused = %v, want 2 (read-only)", v)
		}
		nb, nd := blob(100, 4)
		wantCode(t, "Put", ro.Put(ctx, nd, bytes.NewReader(nb)), codes.FailedPrecondition, "read-only")
		wantCode(t, "UpdateActionResult", ro.ActionCache("").UpdateActionResult(ctx, nd, result), codes.FailedPrecondition, "read-only")
		free()
		wantCode(t, "Put after space came back", ro.Put(ctx, nd, bytes.NewReader(nb)), codes.FailedPrecondition, "restarts")
		if err := ro.Close(); err != nil {
			t.Fatalf("Close of the read-only store: %v", err)
		}
	})
	t.Run("restarted with space", func(t *testing.T) {
		t.Log("the next start with free space is read-write again and kept everything")
		rw := openStore(t, dir, disk.Options{})
		readsServed(t, rw)
		put(t, rw, []byte("written after the restart"))
	})
}

func TestLocalDiskSpaceMadeByEviction(t *testing.T) {
	t.Log("a blob that fits once the reserved disk space is enforced by eviction is stored, not refused as a full disk")
	fs := testutil.MountTmpfs(t, "448m")
	l := openStore(t, filepath.Join(fs, "store"), disk.Options{ReservedBytes: 200 << 20})
	waitReady(t, l)
	var stored []digest.Digest
	for i := range 9 {
		b, _ := blob(30<<20, uint64(i))
		stored = append(stored, put(t, l, b))
	}
	// Less than the 200 MiB reserve is free now, and a 20 MiB blob would
	// leave less than the guard's margin: it fits only once eviction (for
	// the reserve) has made room, so the guard must look after eviction.
	b, d := blob(20<<20, 100)
	if err := l.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put = %v, want it stored after evicting older blobs", err)
	}
	if !present(t, l, d) {
		t.Fatal("the blob is not stored")
	}
	if present(t, l, stored[0]) {
		t.Error("the least recently used blob was not evicted to make the room")
	}
}

func TestPackAppendRefusedForSpaceKeepsItsOffset(t *testing.T) {
	t.Log("a pack append the full filesystem refuses leaves the pack's end where its bytes end: the next blob goes after the last one, not over it")
	// pwritev returns -1 with ENOSPC; counted as written, it moved the next
	// append back a byte, over the last byte of the blob before (in an
	// empty pack, to offset -1: EINVAL for every later append).
	ctx := context.Background()
	fs := testutil.MountTmpfs(t, "256m")
	l := openStore(t, filepath.Join(fs, "store"), disk.Options{})
	waitReady(t, l)
	before, bd := blob(os.Getpagesize(), 1) // fills the pack's first page: the refused append writes nothing
	if err := l.PutBytes(ctx, bd, before, store.PutHint{}); err != nil {
		t.Fatal(err)
	}

	free := testutil.FillFS(t, fs)
	if err := disk.AppendToPackForTest(l, []byte("refused")); status.Code(err) != codes.ResourceExhausted || !disk.IsFull(err) {
		t.Fatalf("pack append on a full filesystem = %v, want RESOURCE_EXHAUSTED marked full", err)
	}
	pack := disk.PacksForTest(l)[0]
	if st, err := os.Stat(pack.Path); err != nil || st.Size() != pack.Size {
		t.Errorf("after the refused append the pack's next append goes to %d; its file holds %d bytes (%v)", pack.Size, st.Size(), err)
	}
	free()

	after, ad := blob(100, 3)
	if err := l.PutBytes(ctx, ad, after, store.PutHint{}); err != nil {
		t.Fatalf("PutBytes once space is back: %v", err)
	}
	for _, b := range [][]byte{before, after} {
		if got, err := l.GetBytes(ctx, digest.OfBytes(b)); err != nil || !bytes.Equal(got, b) {
			t.Errorf("GetBytes of a blob stored around the refused append: %d bytes, %v", len(got), err)
		}
	}
}

func TestWriteTheFilesystemRefusesMakesTheGuardLookAgain(t *testing.T) {
	t.Log("a write that runs out of space after the guard let it through (its reading predates another process filling the disk) is refused as filesystem full, and so is every write after it until space is back")
	ctx := context.Background()
	fs := testutil.MountTmpfs(t, "256m")
	l := openStore(t, filepath.Join(fs, "store"), disk.Options{})
	waitReady(t, l)
	disk.HoldFreeSpaceReadingForTest(l)
	free := testutil.FillFS(t, fs)
	defer free()

	b, d := blob(100, 1) // the first in its pack: it needs a page the filesystem no longer has
	err := l.PutBytes(ctx, d, b, store.PutHint{})
	wantCode(t, "PutBytes", err, codes.ResourceExhausted, "filesystem full")
	if !disk.IsFull(err) {
		t.Errorf("PutBytes = %v, want an error IsFull reports", err)
	}
	// The index is written through a memory mapping: a write reaching it
	// on a full disk would touch pages the filesystem cannot back.
	wantCode(t, "UpdateActionResult after it", l.ActionCache("").UpdateActionResult(ctx, d, &repb.ActionResult{}), codes.ResourceExhausted, "filesystem full")
	if present(t, l, d) {
		t.Error("the refused blob is reported present")
	}
}
