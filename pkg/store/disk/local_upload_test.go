package disk_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/internal/testutil"

	"github.com/castd/castd/pkg/store/disk"
)

// writeUpload writes b to u in pieces of n bytes.
func writeUpload(t *testing.T, u *disk.Upload, b []byte, n int) {
	t.Helper()
	for off := 0; off < len(b); off += n {
		if _, err := u.Write(b[off:min(off+n, len(b))]); err != nil {
			t.Fatalf("Write at %d: %v", off, err)
		}
	}
}

// tempFiles lists what is left in the store's temp directory.
func tempFiles(t *testing.T, l *disk.Store) []string {
	t.Helper()
	ents, err := os.ReadDir(l.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestLocalUploadCommitStoresVerifiedChunks(t *testing.T) {
	// Why: a blob taken in by renaming the upload's file must be the same
	// as one Put stores: readable, with chunk sums computed from writes
	// that do not line up with chunks (and resumed after Suspend), so a
	// flipped byte ends a read with DATA_LOSS before the bad chunk.
	const mib = 1 << 20
	ctx := context.Background()
	l := openStore(t, t.TempDir(), disk.Options{})
	b, d := blob(3*mib+123, 31)
	u, err := l.NewUpload(d)
	if err != nil {
		t.Fatal(err)
	}
	writeUpload(t, u, b[:mib+5000], 100_000)
	u.Suspend() // the client's stream broke; it resumes at Size
	if u.Size() != mib+5000 {
		t.Fatalf("Size = %d after %d bytes", u.Size(), mib+5000)
	}
	writeUpload(t, u, b[u.Size():], 77_777)
	if err := u.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got, err := read(l, d, 0); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read after Commit = %d bytes, %v", len(got), err)
	}
	if !disk.HasChunkSumsForTest(l, d) {
		t.Fatal("Commit recorded no chunk sums")
	}
	if left := tempFiles(t, l); len(left) != 0 {
		t.Fatalf("temp files left after Commit: %v", left)
	}
	rewrite(t, disk.BlobPathForTest(l, d), func(c []byte) []byte { c[mib+mib/2] ^= 0x40; return c })
	rc, err := l.Get(ctx, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := readWith(rc, mib)
	if status.Code(err) != codes.DataLoss || !disk.PrefixVerified(err) || !bytes.Equal(got, b[:mib]) {
		t.Fatalf("read of a flipped byte = %d bytes, %v; want the first chunk, then DATA_LOSS", len(got), err)
	}
}

func TestLocalUploadCommitRefusals(t *testing.T) {
	ctx := context.Background()
	b, d := blob(2<<20, 32)
	for _, tc := range []struct {
		name string
		d    digest.Digest
		data []byte
	}{
		// Why: bytes that do not hash to the digest must never be stored.
		{"wrong hash", d, append([]byte{b[0] ^ 1}, b[1:]...)},
		// Why: finish_write before the whole blob is a client error.
		{"short", d, b[:len(b)-1]},
		// Same for a small blob, which goes to a pack.
		{"small, wrong hash", digest.OfBytes([]byte("small")), []byte("smalL")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openStore(t, t.TempDir(), disk.Options{})
			u, err := l.NewUpload(tc.d)
			if err != nil {
				t.Fatal(err)
			}
			writeUpload(t, u, tc.data, 1<<20)
			if err := u.Commit(ctx); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Commit = %v, want INVALID_ARGUMENT", err)
			}
			if present(t, l, tc.d) {
				t.Fatal("a refused upload is stored")
			}
			if left := tempFiles(t, l); len(left) != 0 {
				t.Fatalf("temp files left after a refused Commit: %v", left)
			}
		})
	}
	t.Run("past the size", func(t *testing.T) {
		// Why: a byte more than the digest declares is refused at Write.
		l := openStore(t, t.TempDir(), disk.Options{})
		u, err := l.NewUpload(d)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Abort()
		if _, err := u.Write(append(b, 0)); status.Code(err) != codes.InvalidArgument || u.Size() != 0 {
			t.Fatalf("Write past the size = %v (Size %d), want INVALID_ARGUMENT and nothing written", err, u.Size())
		}
	})
}

func TestLocalUploadCommitOfStoredBlob(t *testing.T) {
	// Why: two clients may upload one blob; the second Commit succeeds
	// without touching the stored copy, and its file goes.
	ctx := context.Background()
	for _, size := range []int{100, 2 << 20} {
		l := openStore(t, t.TempDir(), disk.Options{})
		b, d := blob(size, 33)
		u, err := l.NewUpload(d)
		if err != nil {
			t.Fatal(err)
		}
		writeUpload(t, u, b, 1<<20)
		put(t, l, b)
		if err := u.Commit(ctx); err != nil {
			t.Fatalf("Commit of a stored blob of %d bytes: %v", size, err)
		}
		if err := u.Commit(ctx); err != nil {
			t.Fatalf("second Commit: %v", err)
		}
		if left := tempFiles(t, l); len(left) != 0 {
			t.Fatalf("temp files left: %v", left)
		}
		if got, err := read(l, d, 0); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("read = %d bytes, %v", len(got), err)
		}
	}
}

func TestLocalUploadOpenHoldsTheBlob(t *testing.T) {
	// Why: the ByteStream server passes the committed blob on with Put;
	// the reader Open returns must read the blob (a decorator may stream
	// it elsewhere) and Abort after Commit must not remove it.
	ctx := context.Background()
	l := openStore(t, t.TempDir(), disk.Options{})
	b, d := blob(3<<20, 34)
	u, err := l.NewUpload(d)
	if err != nil {
		t.Fatal(err)
	}
	writeUpload(t, u, b, 1<<20)
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	u.Abort()
	rc, err := u.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read through Open = %d bytes, %v", len(got), err)
	}
}

func TestTempSpoolerUpload(t *testing.T) {
	// Why: a CAS that is not the local store gets the bytes from the file
	// through Open; Abort after that removes it.
	ctx := context.Background()
	dir := t.TempDir()
	b, d := blob(2<<20, 35)
	u, err := disk.TempSpooler(dir).NewUpload(d)
	if err != nil {
		t.Fatal(err)
	}
	writeUpload(t, u, b, 300_000)
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m := store.NewMemory()
	rc, err := u.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Put(ctx, d, rc)
	_ = rc.Close()
	if err != nil {
		t.Fatalf("Put from Open: %v", err)
	}
	u.Abort()
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Fatalf("files left after Abort: %v", left)
	}
}

func TestLocalUploadDiskFull(t *testing.T) {
	// Why: an upload on a full filesystem gets the store's "filesystem
	// full" refusal, not a raw ENOSPC, both when it starts and when the
	// disk fills while it is being written.
	fs := testutil.MountTmpfs(t, "256m")
	l := openStore(t, filepath.Join(fs, "store"), disk.Options{})
	b, d := blob(2<<20, 36)
	u, err := l.NewUpload(d)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	writeUpload(t, u, b[:1<<20], 1<<20)
	free := testutil.FillFS(t, fs)
	defer free()
	_, err = u.Write(b[1<<20:])
	wantCode(t, "Write on a full disk", err, codes.ResourceExhausted, "filesystem full")
	_, err = l.NewUpload(digest.OfBytes(b[1:]))
	wantCode(t, "NewUpload on a full disk", err, codes.ResourceExhausted, "filesystem full")
}

func TestLocalUploadCommitSmallBlob(t *testing.T) {
	// Why: a blob below the inline threshold sent in several requests
	// goes to a pack like any small Put, and its file goes.
	ctx := context.Background()
	l := openStore(t, t.TempDir(), disk.Options{InlineThreshold: 4 << 10})
	b, d := blob(3000, 37)
	u, err := l.NewUpload(d)
	if err != nil {
		t.Fatal(err)
	}
	writeUpload(t, u, b, 1000)
	if err := u.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got, err := read(l, d, 0); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read after Commit = %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(disk.BlobPathForTest(l, d)); !os.IsNotExist(err) {
		t.Fatalf("a small blob has a file of its own: %v", err)
	}
	if left := tempFiles(t, l); len(left) != 0 {
		t.Fatalf("temp files left after Commit: %v", left)
	}
}

func TestLocalUploadCountsAgainstQuota(t *testing.T) {
	// Why: an upload's file takes disk space before it is committed; its
	// bytes count against the quota as they arrive (evicting as for a Put),
	// stop counting when it is aborted, and count once when committed.
	const mib = 1 << 20
	ctx := context.Background()
	l := openStore(t, t.TempDir(), disk.Options{InlineThreshold: 4 << 10, QuotaBytes: 8 * mib})
	waitReady(t, l)
	var stored []digest.Digest
	for i := range 6 {
		b, _ := blob(mib, uint64(40+i))
		stored = append(stored, put(t, l, b))
	}
	b, d := blob(4*mib, 50)
	u, err := l.NewUpload(d)
	if err != nil {
		t.Fatal(err)
	}
	writeUpload(t, u, b[:3*mib], mib)
	if present(t, l, stored[0]) {
		t.Error("3 MiB of an upload over 6 MiB stored, quota 8 MiB: the oldest blob was not evicted")
	}
	used := l.Stats().UsedBytes
	if used > 8*mib || used < 3*mib {
		t.Errorf("UsedBytes = %d with 3 MiB spooled, want at least that and at most the quota", used)
	}
	u.Abort()
	if got := l.Stats().UsedBytes; got != used-3*mib {
		t.Errorf("UsedBytes = %d after Abort, want %d (the spooled bytes no longer count)", got, used-3*mib)
	}
	u, err = l.NewUpload(d)
	if err != nil {
		t.Fatal(err)
	}
	writeUpload(t, u, b, mib)
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, sd := range append(stored, d) {
		if present(t, l, sd) {
			want += sd.Size
		}
	}
	if got := l.Stats().UsedBytes; got != want {
		t.Errorf("UsedBytes = %d after Commit, want %d, the stored blobs' bytes (the upload counted once)", got, want)
	}
}
