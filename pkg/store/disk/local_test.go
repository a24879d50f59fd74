package disk_test

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalPutGet(t *testing.T) {
	l := openStore(t, t.TempDir(), disk.Options{})
	for _, tc := range []struct {
		name   string
		size   int
		offset int64
	}{
		// Smallest non-empty blob goes inline in the index.
		{"inline blob", 1, 0},
		// The threshold itself is still inline.
		{"inline at threshold", 16 << 10, 0},
		// One byte over the threshold becomes a file.
		{"file just over threshold", 16<<10 + 1, 0},
		// A few MiB stream through a temp file and several buffers.
		{"large file", 5<<20 + 3, 0},
		// Offset reads of inline blobs slice the verified bytes.
		{"inline with offset", 1000, 999},
		// Offset reads of files still checksum the skipped prefix.
		{"file with offset", 3 << 20, 1<<20 + 7},
		// Offset equal to the size reads nothing.
		{"file offset at end", 100 << 10, 100 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: every size class must round-trip byte for byte.
			b, d := blob(tc.size, uint64(tc.size)+uint64(tc.offset))
			put(t, l, b)
			got, err := read(l, d, tc.offset)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, b[tc.offset:]) {
				t.Fatalf("Get returned %d bytes, want %d matching", len(got), len(b)-int(tc.offset))
			}
		})
	}
}

func TestLocalPutRejectsBadBytes(t *testing.T) {
	l := openStore(t, t.TempDir(), disk.Options{})
	for _, tc := range []struct {
		name string
		size int
		data func(b []byte) []byte
	}{
		// A flipped byte must not be stored under the declared digest.
		{"inline wrong bytes", 100, func(b []byte) []byte { c := bytes.Clone(b); c[5] ^= 1; return c }},
		// Fewer bytes than the digest declares.
		{"inline short", 100, func(b []byte) []byte { return b[:99] }},
		// More bytes than the digest declares.
		{"inline long", 100, func(b []byte) []byte { return append(bytes.Clone(b), 0) }},
		// Same checks on the streaming path; the temp file must go too.
		{"file wrong bytes", 1 << 20, func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-1] ^= 1; return c }},
		{"file short", 1 << 20, func(b []byte) []byte { return b[:len(b)-1] }},
		{"file long", 1 << 20, func(b []byte) []byte { return append(bytes.Clone(b), 1, 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: a blob is stored only after its bytes hash to its digest.
			b, d := blob(tc.size, 42)
			err := l.Put(context.Background(), d, bytes.NewReader(tc.data(b)))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Put = %v, want INVALID_ARGUMENT", err)
			}
			if present(t, l, d) {
				t.Fatal("rejected blob is present")
			}
			if _, err := read(l, d, 0); status.Code(err) != codes.NotFound {
				t.Fatalf("Get after rejection = %v, want NOT_FOUND", err)
			}
			if st := l.Stats(); st.UsedBytes != 0 || st.Objects != 0 {
				t.Fatalf("Stats after rejection = %+v, want nothing used", st)
			}
		})
	}
}

func TestLocalFindMissing(t *testing.T) {
	l := openStore(t, t.TempDir(), disk.Options{})
	small := put(t, l, []byte("small"))
	large, _ := blob(100<<10, 7)
	largeD := put(t, l, large)
	_, absent := blob(10, 8)
	_, absentLarge := blob(1<<20, 9)
	for _, tc := range []struct {
		name string
		in   []digest.Digest
		want []digest.Digest
	}{
		// Present blobs of both kinds are not reported.
		{"all present", []digest.Digest{small, largeD}, nil},
		// The empty blob is always present, even though it was never put.
		{"empty digest", []digest.Digest{digest.Empty}, nil},
		// Duplicates of a missing digest are reported once.
		{"duplicates", []digest.Digest{absent, absent, small, absentLarge, absent}, []digest.Digest{absent, absentLarge}},
		// Same size, different hash: a miss.
		{"same size other hash", []digest.Digest{digest.OfBytes([]byte("smalL"))}, []digest.Digest{digest.OfBytes([]byte("smalL"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: FindMissing must answer per digest, once, without I/O errors.
			got, err := l.FindMissing(context.Background(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !sameSet(got, tc.want) || len(got) != len(tc.want) {
				t.Fatalf("FindMissing = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLocalEmptyBlob(t *testing.T) {
	// Why: the empty digest is always present and reads as zero bytes.
	l := openStore(t, t.TempDir(), disk.Options{})
	if err := l.Put(context.Background(), digest.Empty, bytes.NewReader(nil)); err != nil {
		t.Fatalf("Put(empty) = %v", err)
	}
	got, err := read(l, digest.Empty, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("Get(empty) = %q, %v", got, err)
	}
	if err := l.Put(context.Background(), digest.Empty, bytes.NewReader([]byte("x"))); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Put(empty digest, 1 byte) = %v, want INVALID_ARGUMENT", err)
	}
}

func sameSet(a, b []digest.Digest) bool {
	return len(digest.NewSet(a...).Difference(digest.NewSet(b...))) == 0 &&
		len(digest.NewSet(b...).Difference(digest.NewSet(a...))) == 0
}
