package casdir_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/casdir"
)

var _ store.CAS = (*casdir.Store)(nil)

func TestPutWritesTheFileBuildStreamReads(t *testing.T) {
	// BuildStream opens cas/objects/<hash[:2]>/<hash[2:]> itself as soon
	// as the RPC returns, and hardlinks it: complete and read-only.
	dir := t.TempDir()
	s := open(t, dir, casdir.Options{})
	b, d := blob(1, 1000)
	put(t, s, b)
	path := objectPath(dir, d)
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("file %s: %d bytes, err %v; want the blob's %d bytes", path, len(got), err, len(b))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("file mode %v (%v), want read-only 0444", fi.Mode(), err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "cas", "tmp")); len(tmp) != 0 {
		t.Fatalf("cas/tmp holds %d files after Put, want none", len(tmp))
	}
	if u := usage(t, s); u != d.Size {
		t.Fatalf("usage %d, want %d", u, d.Size)
	}
	if m := missing(t, s, d); len(m) != 0 {
		t.Fatalf("FindMissing after Put: %v missing", m)
	}
}

func TestGet(t *testing.T) {
	s := open(t, t.TempDir(), casdir.Options{})
	b, d := blob(2, 300_000)
	put(t, s, b)
	cases := []struct {
		name   string
		offset int64
	}{
		// A whole read, through several Reads of the copy buffer size.
		{"from the start", 0},
		// A resumed read: the prefix is hashed too, so the blob is still checked.
		{"from an offset", 123_457},
		// The end of the blob: nothing to serve, but a valid request.
		{"at the end", d.Size},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(s, d, tc.offset)
			if err != nil || !bytes.Equal(got, b[tc.offset:]) {
				t.Fatalf("Get from %d: %d bytes, err %v; want %d bytes", tc.offset, len(got), err, len(b[tc.offset:]))
			}
		})
	}
	_, absent := blob(3, 10)
	_, err := s.Get(context.Background(), absent, 0)
	wantCode(t, err, codes.NotFound)
	_, err = s.Get(context.Background(), d, d.Size+1)
	wantCode(t, err, codes.OutOfRange)
}

func TestPutRejectsBytesThatDoNotMatch(t *testing.T) {
	b, d := blob(4, 1000)
	cases := []struct {
		name string
		data []byte
	}{
		// Same size, one byte different: only the hash tells.
		{"other bytes", append(append([]byte{}, b[:999]...), 'x')},
		{"too short", b[:999]},
		{"too long", append(append([]byte{}, b...), 'x')},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, casdir.Options{})
			err := s.Put(context.Background(), d, bytes.NewReader(tc.data))
			wantCode(t, err, codes.InvalidArgument)
			if exists(t, objectPath(dir, d)) {
				t.Fatal("a rejected blob was stored")
			}
			if tmp, _ := os.ReadDir(filepath.Join(dir, "cas", "tmp")); len(tmp) != 0 {
				t.Fatalf("cas/tmp holds %d files after a rejected Put, want none", len(tmp))
			}
			if u := usage(t, s); u != 0 {
				t.Fatalf("usage %d after a rejected Put, want 0", u)
			}
		})
	}
}

func TestCorruptFileIsNotServed(t *testing.T) {
	b, d := blob(5, 200_000)
	cases := []struct {
		name   string
		flipAt int64
		offset int64
	}{
		// The damage is in the bytes served: the Read that would end the blob fails.
		{"damage in the bytes read", 150_000, 0},
		// The damage is before the offset: only hashing the prefix finds it.
		{"damage before the offset", 10, 100_000},
		// The last byte: the bytes withheld until the check include it.
		{"damage in the last byte", d.Size - 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, casdir.Options{})
			put(t, s, b)
			testutil.FlipByte(t, objectPath(dir, d), tc.flipAt)
			got, err := read(s, d, tc.offset)
			wantCode(t, err, codes.DataLoss)
			if int64(len(got)) >= d.Size-tc.offset {
				t.Fatalf("served all %d bytes of a damaged blob", len(got))
			}
			if exists(t, objectPath(dir, d)) {
				t.Fatal("the damaged file is still there")
			}
			if m := missing(t, s, d); !m.Has(d) {
				t.Fatal("FindMissing reports the damaged blob present")
			}
			if u := usage(t, s); u != 0 {
				t.Fatalf("usage %d after the damaged blob was removed, want 0", u)
			}
			// It can be stored again.
			put(t, s, b)
			if got, err := read(s, d, 0); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("after repair: %d bytes, err %v", len(got), err)
			}
		})
	}
}

func TestFileOfTheWrongSizeIsMissing(t *testing.T) {
	// A truncated file (another program, a full disk) is not the blob.
	dir := t.TempDir()
	s := open(t, dir, casdir.Options{})
	b, d := blob(6, 1000)
	put(t, s, b)
	path := objectPath(dir, d)
	truncate(t, path)
	if m := missing(t, s, d); !m.Has(d) {
		t.Fatal("FindMissing reports a truncated blob present")
	}
	if exists(t, path) {
		t.Fatal("the truncated file is still there")
	}
	put(t, s, b)
	truncate(t, path)
	_, err := s.Get(context.Background(), d, 0)
	wantCode(t, err, codes.NotFound)
	if exists(t, path) {
		t.Fatal("Get left the truncated file")
	}
}

// truncate cuts the read-only blob file at path to 10 bytes.
func truncate(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 10); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyBlobIsAlwaysPresent(t *testing.T) {
	// BuildStream checks out empty files from the empty blob's file.
	dir := t.TempDir()
	s := open(t, dir, casdir.Options{QuotaHigh: 1000, QuotaLow: 1})
	if !exists(t, objectPath(dir, digest.Empty)) {
		t.Fatal("Open did not write the empty blob")
	}
	if m := missing(t, s, digest.Empty); len(m) != 0 {
		t.Fatal("FindMissing reports the empty blob missing")
	}
	if got, err := read(s, digest.Empty, 0); err != nil || len(got) != 0 {
		t.Fatalf("Get(empty) = %d bytes, %v", len(got), err)
	}
	wantCode(t, s.Put(context.Background(), digest.Empty, strings.NewReader("x")), codes.InvalidArgument)
	// An eviction pass never removes it.
	for i := range 3 {
		b, _ := blob(i, 600)
		put(t, s, b)
	}
	if !exists(t, objectPath(dir, digest.Empty)) {
		t.Fatal("eviction removed the empty blob")
	}
	// Something else removed it: a Put of it restores the file.
	if err := os.Remove(objectPath(dir, digest.Empty)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), digest.Empty, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if !exists(t, objectPath(dir, digest.Empty)) {
		t.Fatal("Put(empty) did not restore its file")
	}
}

func TestPutOfAPresentBlobDoesNotReadOrRewrite(t *testing.T) {
	// BuildStream may have hardlinked the file: it must stay the same inode.
	dir := t.TempDir()
	s := open(t, dir, casdir.Options{})
	b, d := blob(7, 1000)
	put(t, s, b)
	before, err := os.Stat(objectPath(dir, d))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), d, failingReader{}); err != nil {
		t.Fatalf("Put of a present blob read its reader: %v", err)
	}
	after, err := os.Stat(objectPath(dir, d))
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("the blob's file was replaced (%v)", err)
	}
	if u := usage(t, s); u != d.Size {
		t.Fatalf("usage %d, want %d (counted once)", u, d.Size)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestFindMissingReportsEachMissingDigestOnce(t *testing.T) {
	// BuildStream sends batches of 512 that may repeat a digest; the
	// caller's slice is its own.
	s := open(t, t.TempDir(), casdir.Options{})
	b, present := blob(8, 100)
	put(t, s, b)
	_, absent := blob(9, 100)
	ds := []digest.Digest{absent, present, absent, digest.Empty}
	m, err := s.FindMissing(context.Background(), ds)
	if err != nil || len(m) != 1 || m[0] != absent {
		t.Fatalf("FindMissing = %v, %v; want [%s]", m, err, absent)
	}
	if ds[0] != absent || ds[1] != present || ds[2] != absent || ds[3] != digest.Empty {
		t.Fatal("FindMissing changed its argument")
	}
}

func TestPutStopsWhenItsCallEnds(t *testing.T) {
	// A client that gives up mid-upload must not leave a Put reading on.
	dir := t.TempDir()
	s := open(t, dir, casdir.Options{})
	b, d := blob(10, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{r: bytes.NewReader(b), n: 3, cancel: cancel}
	wantCode(t, s.Put(ctx, d, r), codes.Canceled)
	if exists(t, objectPath(dir, d)) {
		t.Fatal("a cancelled Put stored the blob")
	}
}

// cancelAfter cancels its context after n Reads.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return c.r.Read(p[:min(len(p), 1000)])
}

func TestOnlySHA256(t *testing.T) {
	// Why: BuildStream's layout names a file by its hex hash alone, so a
	// BLAKE3 blob stored there would pass for the SHA-256 blob of the same
	// hex. Other functions are refused on write (naming the function),
	// never found on read and always missing, whatever files exist.
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, casdir.Options{})
	b, d := blob(3, 5000)
	put(t, s, b)
	twin := d
	twin.Func = digest.BLAKE3
	other := digest.OfBytesIn(digest.BLAKE3, []byte("blake3 bytes"))
	for _, w := range []struct {
		name string
		put  func(digest.Digest, []byte) error
	}{
		{"Put", func(d digest.Digest, b []byte) error { return s.Put(ctx, d, bytes.NewReader(b)) }},
		{"PutWith", func(d digest.Digest, b []byte) error { return s.PutWith(ctx, d, bytes.NewReader(b), store.PutHint{}) }},
		{"PutBytes", func(d digest.Digest, b []byte) error { return s.PutBytes(ctx, d, b, store.PutHint{Verified: true}) }},
	} {
		for _, c := range []struct {
			d digest.Digest
			b []byte
		}{{twin, b}, {other, []byte("blake3 bytes")}, {digest.EmptyIn(digest.BLAKE3), nil}, {digest.OfBytesIn(digest.SHA512, b), b}} {
			err := w.put(c.d, c.b)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.d.Func.String()) {
				t.Errorf("%s %s = %v; want INVALID_ARGUMENT naming %s", w.name, c.d, err, c.d.Func)
			}
		}
	}
	if _, err := os.Stat(objectPath(dir, digest.OfBytes([]byte("blake3 bytes")))); err == nil {
		t.Error("a BLAKE3 blob was stored under a SHA-256 name")
	}
	if u := usage(t, s); u != d.Size {
		t.Errorf("usage %d after refused writes, want %d", u, d.Size)
	}
	for _, x := range []digest.Digest{twin, other, digest.EmptyIn(digest.BLAKE3)} {
		if _, err := s.Get(ctx, x, 0); status.Code(err) != codes.NotFound {
			t.Errorf("Get %s = %v, want NOT_FOUND (the file of %s must not answer for it)", x, err, d)
		}
		if r := s.GetMany(ctx, []digest.Digest{x})[0]; status.Code(r.Err) != codes.NotFound {
			t.Errorf("GetMany %s = %v, want NOT_FOUND", x, r.Err)
		}
	}
	m := missing(t, s, d, twin, other)
	if len(m) != 2 || m.Has(d) {
		t.Errorf("FindMissing(%s, its BLAKE3 twin, a BLAKE3 blob) = %v; want the two BLAKE3 digests", d, m)
	}
	if got, err := read(s, d, 0); err != nil || !bytes.Equal(got, b) {
		t.Errorf("the SHA-256 blob after all that: %d bytes, %v", len(got), err)
	}
}
