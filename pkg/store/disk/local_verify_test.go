package disk_test

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalCorruptBlobIsDeletedNotServed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		corrupt  func(t *testing.T, l *disk.Store, d digest.Digest)
		wantCode codes.Code // code of the first Get or of its stream
	}{
		// Bit rot inside the index: caught before Get returns.
		{"inline bytes changed", 100, func(t *testing.T, l *disk.Store, d digest.Digest) {
			if err := disk.CorruptInlineForTest(l, d, make([]byte, 104)); err != nil {
				t.Fatal(err)
			}
		}, codes.NotFound},
		// A file with one flipped byte: the stream fails its last Read.
		{"file byte flipped", 200 << 10, func(t *testing.T, l *disk.Store, d digest.Digest) {
			rewrite(t, disk.BlobPathForTest(l, d), func(b []byte) []byte { b[1000] ^= 0x80; return b })
		}, codes.DataLoss},
		// A truncated file (e.g. after a power loss) is caught at open.
		{"file truncated", 200 << 10, func(t *testing.T, l *disk.Store, d digest.Digest) {
			rewrite(t, disk.BlobPathForTest(l, d), func(b []byte) []byte { return b[:len(b)/2] })
		}, codes.NotFound},
		// A file removed behind the store's back.
		{"file deleted", 200 << 10, func(t *testing.T, l *disk.Store, d digest.Digest) {
			if err := os.Remove(disk.BlobPathForTest(l, d)); err != nil {
				t.Fatal(err)
			}
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: corrupt local data is deleted, counted and never served.
			reg := prometheus.NewRegistry()
			l := openStore(t, t.TempDir(), disk.Options{Registerer: reg})
			b, d := blob(tc.size, 3)
			put(t, l, b)
			tc.corrupt(t, l, d)
			got, err := read(l, d, 0)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("read corrupt blob = %d bytes, %v; want %v", len(got), err, tc.wantCode)
			}
			if present(t, l, d) {
				t.Fatal("corrupt blob still reported present")
			}
			if _, err := read(l, d, 0); status.Code(err) != codes.NotFound {
				t.Fatalf("second read = %v, want NOT_FOUND", err)
			}
			if v := testutil.MetricValue(t, reg, "castd_store_verify_failures_total"); v != 1 {
				t.Fatalf("castd_store_verify_failures_total = %v, want 1", v)
			}
			put(t, l, b) // the blob can be stored again
			if got, err := read(l, d, 0); err != nil || len(got) != tc.size {
				t.Fatalf("read after re-put = %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestLocalCorruptFileNeverReturnsFullBlob(t *testing.T) {
	// Why: a reader that reads to the end must get an error, not the bytes.
	l := openStore(t, t.TempDir(), disk.Options{})
	b, d := blob(3<<20, 4)
	put(t, l, b)
	rewrite(t, disk.BlobPathForTest(l, d), func(c []byte) []byte { c[len(c)-1] ^= 1; return c })
	rc, err := l.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if status.Code(err) != codes.DataLoss || n >= int64(len(b)) {
		t.Fatalf("read %d of %d bytes, err %v; want fewer bytes and DATA_LOSS", n, len(b), err)
	}
}

func rewrite(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}
