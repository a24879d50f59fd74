package disk_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalReopenKeepsEverything(t *testing.T) {
	// Why: every acknowledged write is present after a clean restart.
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ds []digest.Digest
	var blobs [][]byte
	for i, size := range []int{1, 500, 16 << 10, 64 << 10, 2 << 20} {
		b, _ := blob(size, uint64(i))
		ds = append(ds, put(t, l, b))
		blobs = append(blobs, b)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openStore(t, dir, disk.Options{})
	for i, d := range ds {
		got, err := read(l, d, 0) // before Ready: served through the index fallback
		if err != nil || string(got) != string(blobs[i]) {
			t.Fatalf("blob %s after reopen: %d bytes, %v", d, len(got), err)
		}
	}
	waitReady(t, l)
	if st := l.Stats(); st.Objects != int64(len(ds)) {
		t.Fatalf("Objects after reopen = %d, want %d", st.Objects, len(ds))
	}
}

func TestLocalReopenAfterCrashCleansUp(t *testing.T) {
	// Why: a crash leaves temp files, orphan files and lost files; Open repairs all.
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keep, _ := blob(1<<20, 1)
	keepD := put(t, l, keep)
	lost, _ := blob(1<<20, 2)
	lostD := put(t, l, lost)
	lostPath := disk.BlobPathForTest(l, lostD)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Simulate what kill -9 at various points leaves behind.
	tmpFile := filepath.Join(dir, "tmp", "put-123")
	orphan, orphanD := blob(1<<20, 3)
	orphanPath := filepath.Join(dir, "cas", orphanD.Hash[:2], orphanD.Hash+"-"+strconv.FormatInt(orphanD.Size, 10))
	mustWrite(t, tmpFile, []byte("half an upload"))
	mustWrite(t, orphanPath, orphan)
	if err := os.Remove(lostPath); err != nil {
		t.Fatal(err)
	}

	l = openStore(t, dir, disk.Options{})
	if _, err := os.Stat(tmpFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file survived Open: %v", err)
	}
	waitReady(t, l)
	if _, err := os.Stat(orphanPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan blob file survived reconciliation: %v", err)
	}
	if present(t, l, orphanD) || present(t, l, lostD) {
		t.Fatal("orphan or lost blob reported present")
	}
	if got, err := read(l, keepD, 0); err != nil || len(got) != len(keep) {
		t.Fatalf("intact blob after crash: %d bytes, %v", len(got), err)
	}
	if st := l.Stats(); st.Objects != 1 || st.UsedBytes != int64(len(keep)) {
		t.Fatalf("Stats after repair = %+v, want 1 object of %d bytes", st, len(keep))
	}
}

func TestLocalSecondOpenFailsNamingPID(t *testing.T) {
	// Why: one castd per store directory; the second says who holds it.
	dir := t.TempDir()
	l := openStore(t, dir, disk.Options{})
	_, err := disk.Open(dir, disk.Options{})
	if !errors.Is(err, disk.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Open error %q does not name %s and our pid", msg, dir)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatalf("Open after Close = %v", err)
	}
	_ = l2.Close()
}

func TestLocalUnwritableDirectory(t *testing.T) {
	// Why: a read-only store directory is a clear error naming the path.
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		// Root ignores permission bits; use a path the kernel refuses.
		_ = f.Close()
		dir = "/sys/castd-store-test"
	}
	_, err := disk.Open(dir, disk.Options{})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open(%s) = %v, want an error naming the directory", dir, err)
	}
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLocalReadAsTheIndexLoadEnds(t *testing.T) {
	// Why: a read that misses a stored blob in the index while it loads
	// looks in badger, unless the load has ended meanwhile; the loader has
	// then adopted the blob, and the read must look in the index again
	// instead of answering NOT_FOUND (a flake of the earlier-layout test).
	dir := t.TempDir()
	data := []byte("stored before the restart")
	d := digest.OfBytes(data)
	l := openStore(t, dir, disk.Options{})
	if err := l.PutBytes(context.Background(), d, data, store.PutHint{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var release func()
	release, reset := disk.HoldLoadForTest(func(l *disk.Store) {
		release()
		disk.WaitLoadedForTest(l)
	})
	defer reset()
	l = openStore(t, dir, disk.Options{})
	defer release()
	if got, err := l.GetBytes(context.Background(), d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBytes as the load ends = %q, %v; want the stored blob", got, err)
	}
}
