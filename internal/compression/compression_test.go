package compression_test

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/internal/testutil"
)

const zstd = repb.Compressor_ZSTD

func TestRoundTrip(t *testing.T) {
	// Why: what Encode and Writer produce, Decode and Reader take back, for
	// a blob smaller than a block and one spanning several.
	for _, n := range []int{1, 1000, 3<<20 + 17} {
		src := bytes.Repeat([]byte("castd compresses "), n/17+1)[:n]
		got, err := compression.Decode(zstd, compression.Encode(zstd, nil, src), int64(n), codes.InvalidArgument)
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: Decode(Encode) = %d bytes, %v", n, len(got), err)
		}
		var buf bytes.Buffer
		w := compression.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r := compression.NewReader(zstd, &buf, int64(n), codes.InvalidArgument)
		got, err = io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: Reader(Writer) = %d bytes, %v", n, len(got), err)
		}
	}
}

func TestBadStreams(t *testing.T) {
	src := bytes.Repeat([]byte("abc"), 5000)
	good := compression.Encode(zstd, nil, src)
	for name, tc := range map[string]struct {
		data []byte
		size int64
		want string
	}{
		"truncated":           {good[:len(good)-3], int64(len(src)), "zstd stream"},
		"longer than digest":  {good, int64(len(src)) - 1, "more than"},
		"shorter than digest": {good, int64(len(src)) + 1, "ends after"},
		"not zstd":            {[]byte("hello, not a frame"), 5, "zstd stream"},
	} {
		t.Run(name, func(t *testing.T) {
			// Why: a bad upload is the client's error, and never a blob.
			_, err := compression.Decode(zstd, tc.data, tc.size, codes.InvalidArgument)
			if status.Code(err) != codes.InvalidArgument || !bytes.Contains([]byte(status.Convert(err).Message()), []byte(tc.want)) {
				t.Fatalf("got %v, want INVALID_ARGUMENT mentioning %q", err, tc.want)
			}
		})
	}
}

func TestBombIsRefusedWithoutDecodingIt(t *testing.T) {
	// Why: 32 KiB on the wire that would decode to 1 GiB must cost about
	// the digest's size (10 bytes) plus a window, not 1 GiB.
	for _, declare := range []bool{true, false} {
		bomb := testutil.ZstdBomb(1<<30, declare)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := compression.Decode(zstd, bomb, 10, codes.InvalidArgument)
		runtime.ReadMemStats(&after)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("declare=%v: got %v, want INVALID_ARGUMENT", declare, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
			t.Fatalf("declare=%v: decoding the bomb allocated %d bytes", declare, n)
		}
	}
}

func TestFromName(t *testing.T) {
	// Why: resource names carry the lowercase name; identity and unknown
	// compressors are not valid there.
	if c, err := compression.FromName("zstd"); err != nil || c != zstd {
		t.Fatalf("zstd: %v %v", c, err)
	}
	for _, bad := range []string{"identity", "ZSTD", "brotli", "deflate", "lz4"} {
		if _, err := compression.FromName(bad); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%s: got %v", bad, err)
		}
	}
}

func TestChunkerFramesWrites(t *testing.T) {
	// Why: ByteStream messages carry at most the chunk size, whatever
	// sizes the encoder writes in, and nothing is lost or sent empty.
	var msgs []int
	var all []byte
	c := compression.NewChunker(4, func(b []byte) error { msgs, all = append(msgs, len(b)), append(all, b...); return nil })
	for _, w := range []string{"ab", "cdefghij", "k", ""} {
		if _, err := c.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if string(all) != "abcdefghijk" || len(msgs) != 3 || msgs[0] != 4 || msgs[1] != 4 || msgs[2] != 3 {
		t.Fatalf("messages %v carrying %q", msgs, all)
	}
}
