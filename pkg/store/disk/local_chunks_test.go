package disk_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalCorruptChunkFailsBeforeItsBytes(t *testing.T) {
	const mib = 1 << 20
	b, d := blob(3*mib, 21)
	for _, tc := range []struct {
		name   string
		offset int64
		bufLen int    // the caller's Read buffer
		want   []byte // the bytes served before DATA_LOSS
	}{
		// ByteStream's reads: 1 MiB buffers, one chunk each.
		{"chunk-sized reads", 0, mib, b[:mib]},
		// io.Copy's 32 KiB reads take a chunk in parts.
		{"small reads", 0, 32 << 10, b[:mib]},
		// A resumed read inside the good first chunk.
		{"offset in a good chunk", 1000, mib, b[1000:mib]},
		// A read that starts inside the bad chunk serves nothing.
		{"offset in the bad chunk", mib + 10, mib, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: a flipped byte in the middle chunk of a 3 MiB blob must
			// end the stream before any byte of that chunk goes out, so a
			// client never holds a bad byte and the fan-out can resume
			// from a remote at the failing offset.
			l := openStore(t, t.TempDir(), disk.Options{})
			put(t, l, b)
			if !disk.HasChunkSumsForTest(l, d) {
				t.Fatal("Put recorded no chunk sums")
			}
			rewrite(t, disk.BlobPathForTest(l, d), func(c []byte) []byte { c[mib+mib/2] ^= 0x40; return c })
			rc, err := l.Get(context.Background(), d, tc.offset)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := readWith(rc, tc.bufLen)
			if status.Code(err) != codes.DataLoss || !disk.PrefixVerified(err) {
				t.Fatalf("read = %d bytes, %v; want DATA_LOSS after verified bytes only", len(got), err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("served %d bytes before DATA_LOSS; want exactly the %d good bytes before the bad chunk", len(got), len(tc.want))
			}
			if present(t, l, d) {
				t.Fatal("corrupt blob still reported present")
			}
			if _, err := read(l, d, 0); status.Code(err) != codes.NotFound {
				t.Fatalf("read after DATA_LOSS = %v, want NOT_FOUND", err)
			}
		})
	}
}

func TestLocalFileWithoutChunkSumsStillReads(t *testing.T) {
	// Why: stores written before chunk sums must open and serve their
	// large blobs, still verified by the whole-file CRC.
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, d := blob(3<<20+5, 22)
	put(t, l, b)
	if err := disk.StripChunkSumsForTest(l, d); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openStore(t, dir, disk.Options{})
	for _, off := range []int64{0, 1 << 20, int64(len(b))} {
		if got, err := read(l, d, off); err != nil || !bytes.Equal(got, b[off:]) {
			t.Fatalf("read at %d = %d bytes, %v; want the %d stored bytes", off, len(got), err, len(b)-int(off))
		}
	}
	rewrite(t, disk.BlobPathForTest(l, d), func(c []byte) []byte { c[10] ^= 1; return c })
	got, err := read(l, d, 0)
	if status.Code(err) != codes.DataLoss || len(got) >= len(b) {
		t.Fatalf("read of a corrupt old-format file = %d bytes, %v; want fewer bytes and DATA_LOSS", len(got), err)
	}
	if disk.PrefixVerified(err) {
		t.Fatal("an old-format file served unverified bytes, but its DATA_LOSS claims they were verified")
	}
}

// readWith reads r to the end with Read calls of a buffer of n bytes and
// returns what was served and the error that ended it (nil at EOF).
func readWith(r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		m, err := r.Read(buf)
		out = append(out, buf[:m]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestLocalChunkedReadsFromAnyOffset(t *testing.T) {
	// Why: resumed ByteStream reads start anywhere, on or off a chunk
	// boundary, up to the very end; each gets exactly the blob's suffix.
	const mib = 1 << 20
	l := openStore(t, t.TempDir(), disk.Options{})
	b, d := blob(2*mib+5, 23)
	put(t, l, b)
	for _, off := range []int64{0, 1, mib - 1, mib, mib + 1, 2 * mib, 2*mib + 4, 2*mib + 5} {
		for _, bufLen := range []int{32 << 10, mib, 3 * mib} {
			rc, err := l.Get(context.Background(), d, off)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readWith(rc, bufLen)
			_ = rc.Close()
			if err != nil || !bytes.Equal(got, b[off:]) {
				t.Fatalf("read at %d with %d-byte reads = %d bytes, %v; want the %d-byte suffix", off, bufLen, len(got), err, len(b)-int(off))
			}
		}
	}
}
