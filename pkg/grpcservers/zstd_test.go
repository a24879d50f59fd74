package grpcservers_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/grpcservers"
)

const zstd = repb.Compressor_ZSTD

// mixedBlob is n bytes, half text that compresses well, half noise that
// does not: a compressed stream of it spans several ByteStream chunks.
func mixedBlob(n int, seed byte) []byte {
	b := pattern(n, seed)
	copy(b, bytes.Repeat([]byte("castd keeps blobs whole; zstd keeps links cheap. "), n/40+1)[:n/2])
	return b
}

func unzstd(t *testing.T, z []byte, size int64) []byte {
	t.Helper()
	b, err := compression.Decode(zstd, z, size, codes.DataLoss)
	if err != nil {
		t.Fatalf("the server's zstd does not decode: %v", err)
	}
	return b
}

func TestZstdByteStreamRoundTrip(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	ctx := testutil.Context(t)
	for _, n := range []int{1000, 3<<20 + 5} {
		blob := mixedBlob(n, byte(n))
		d := digest.OfBytes(blob)
		z := compression.Encode(zstd, nil, blob)
		// Why: Bazel with --remote_cache_compression uploads
		// compressed-blobs; a small one arrives in one request, a large one
		// in chunks through an upload.
		resp, err := writeChunks(ctx, e.bs, digest.CompressedWriteResourceName("", "u", "zstd", d), z, 0, 256<<10, true)
		if err != nil || resp.GetCommittedSize() != int64(len(z)) {
			t.Fatalf("%d bytes: Write = %v, %v; want committed_size %d (compressed bytes)", n, resp, err, len(z))
		}
		if !e.has(t, d) {
			t.Fatalf("%d bytes: not stored", n)
		}
		// Why: and downloads them compressed, from any offset.
		for _, off := range []int64{0, int64(n / 3)} {
			got, err := readBS(ctx, e.bs, &bspb.ReadRequest{ResourceName: digest.CompressedReadResourceName("", "zstd", d), ReadOffset: off})
			if err != nil {
				t.Fatal(err)
			}
			if plain := unzstd(t, got, d.Size-off); !bytes.Equal(plain, blob[off:]) {
				t.Fatalf("%d bytes from %d: the compressed read decodes to other bytes", n, off)
			}
		}
		// Why: a second upload of a stored blob ends early with -1, REAPI's
		// answer for compressed uploads someone else completed.
		resp, err = writeChunks(ctx, e.bs, digest.CompressedWriteResourceName("", "u2", "zstd", d), z, 0, 256<<10, true)
		if err != nil || resp.GetCommittedSize() != -1 && resp.GetCommittedSize() != int64(len(z)) {
			t.Fatalf("%d bytes: second Write = %v, %v", n, resp, err)
		}
	}
	// Why: REAPI requires INVALID_ARGUMENT for a compressed read with a limit.
	d := e.put(t, []byte("limited"))
	_, err := readBS(ctx, e.bs, &bspb.ReadRequest{ResourceName: digest.CompressedReadResourceName("", "zstd", d), ReadLimit: 3})
	wantCode(t, err, codes.InvalidArgument, "read_limit")
	_, err = readBS(ctx, e.bs, &bspb.ReadRequest{ResourceName: digest.CompressedReadResourceName("", "brotli", d)})
	wantCode(t, err, codes.InvalidArgument, "brotli")
}

func TestZstdBatchRoundTrip(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	ctx := testutil.Context(t)
	text, noise := mixedBlob(8000, 1)[:4000], pattern(4000, 2)
	dt, dn := digest.OfBytes(text), digest.OfBytes(noise)
	// Why: supported_batch_update_compressors lists ZSTD, so entries may
	// come compressed, each with its own compressor.
	resp, err := e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
		{Digest: dt.Proto(), Data: compression.Encode(zstd, nil, text), Compressor: zstd},
		{Digest: dn.Proto(), Data: noise},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.GetResponses() {
		if r.GetStatus().GetCode() != 0 {
			t.Fatalf("%v: %v", r.GetDigest(), r.GetStatus())
		}
	}
	read := func(accept ...repb.Compressor_Value) []*repb.BatchReadBlobsResponse_Response {
		resp, err := e.cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{dt.Proto(), dn.Proto()}, AcceptableCompressors: accept})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetResponses()
	}
	// Why: a client accepting zstd gets compressed what compresses, and
	// identity what does not (noise would only grow).
	rs := read(zstd)
	if rs[0].GetCompressor() != zstd || !bytes.Equal(unzstd(t, rs[0].GetData(), dt.Size), text) {
		t.Fatalf("text: compressor %v", rs[0].GetCompressor())
	}
	if rs[1].GetCompressor() != repb.Compressor_IDENTITY || !bytes.Equal(rs[1].GetData(), noise) {
		t.Fatalf("noise: compressor %v, want identity", rs[1].GetCompressor())
	}
	// Why: a client that does not accept zstd never gets it.
	for _, r := range read() {
		if r.GetCompressor() != repb.Compressor_IDENTITY {
			t.Fatalf("%v: compressor %v without acceptable_compressors", r.GetDigest(), r.GetCompressor())
		}
	}
}

func TestZstdResumableWrite(t *testing.T) {
	// Why: a compressed upload resumes like a plain one, with
	// committed_size in compressed bytes (REAPI).
	e := newEnv(t, grpcservers.Options{})
	ctx := testutil.Context(t)
	blob := mixedBlob(6<<20, 7)
	d := digest.OfBytes(blob)
	z := compression.Encode(zstd, nil, blob)
	name := digest.CompressedWriteResourceName("inst", "resume", "zstd", d)
	part := int64(len(z) / 3)
	_, err := writeChunks(ctx, e.bs, name, z[:part], 0, 128<<10, false)
	wantCode(t, err, codes.InvalidArgument, "finish_write")
	if got := committed(t, e.bs, name, part); got != part {
		t.Fatalf("QueryWriteStatus committed_size %d, want %d compressed bytes", got, part)
	}
	if e.has(t, d) {
		t.Fatal("stored before finish_write")
	}
	resp, err := writeChunks(ctx, e.bs, name, z, part, 128<<10, true)
	if err != nil || resp.GetCommittedSize() != int64(len(z)) {
		t.Fatalf("resumed Write = %v, %v; want committed_size %d", resp, err, len(z))
	}
	if !e.has(t, d) {
		t.Fatal("not stored after the resumed write")
	}
}

func TestZstdWrongBytesAreRefused(t *testing.T) {
	right := mixedBlob(2<<20, 3)
	d := digest.OfBytes(right)
	wrong := compression.Encode(zstd, nil, mixedBlob(2<<20, 4))
	cases := map[string][]byte{
		"other blob's bytes": wrong,
		"not a zstd stream":  pattern(100000, 9),
		"truncated stream":   compression.Encode(zstd, nil, right)[:100000],
	}
	for name, z := range cases {
		t.Run(name, func(t *testing.T) {
			// Why: the decoded bytes are checked against the digest before
			// anything is stored, on every path a compressed blob comes in.
			e := newEnv(t, grpcservers.Options{})
			ctx := testutil.Context(t)
			_, err := writeChunks(ctx, e.bs, digest.CompressedWriteResourceName("", "chunks", "zstd", d), z, 0, 64<<10, true)
			wantCode(t, err, codes.InvalidArgument, "")
			_, err = writeChunks(ctx, e.bs, digest.CompressedWriteResourceName("", "whole", "zstd", d), z, 0, len(z), true)
			wantCode(t, err, codes.InvalidArgument, "")
			resp, err := e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
				{Digest: d.Proto(), Data: z, Compressor: zstd}}})
			if err != nil || codes.Code(resp.GetResponses()[0].GetStatus().GetCode()) != codes.InvalidArgument {
				t.Fatalf("BatchUpdateBlobs = %v, %v; want the entry INVALID_ARGUMENT", resp, err)
			}
			if e.has(t, d) {
				t.Fatal("wrong compressed bytes were stored")
			}
		})
	}
}

func TestZstdBombIsRefused(t *testing.T) {
	// Why: 32 KiB of zstd that decodes to 1 GiB, sent for a 10-byte
	// digest, must be INVALID_ARGUMENT without the server decoding (or
	// allocating) anywhere near 1 GiB, on every path.
	ten := make([]byte, 10)
	d := digest.OfBytes(ten)
	for _, declare := range []bool{true, false} {
		bomb := testutil.ZstdBomb(1<<30, declare)
		e := newEnv(t, grpcservers.Options{})
		ctx := testutil.Context(t)
		paths := map[string]func() error{
			"bytestream whole": func() error {
				_, err := writeChunks(ctx, e.bs, digest.CompressedWriteResourceName("", "w", "zstd", d), bomb, 0, len(bomb), true)
				return err
			},
			"bytestream chunks": func() error {
				_, err := writeChunks(ctx, e.bs, digest.CompressedWriteResourceName("", "c", "zstd", d), bomb, 0, 4<<10, true)
				return err
			},
			"batch": func() error {
				resp, err := e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
					{Digest: d.Proto(), Data: bomb, Compressor: zstd}}})
				if err != nil {
					return err
				}
				return statusErr(resp.GetResponses()[0].GetStatus())
			},
		}
		for name, call := range paths {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := call()
			runtime.ReadMemStats(&after)
			wantCode(t, err, codes.InvalidArgument, "")
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
				t.Errorf("declare=%v %s: the server allocated %d bytes for the bomb", declare, name, n)
			}
			if e.has(t, d) {
				t.Fatalf("declare=%v %s: the bomb's digest was stored", declare, name)
			}
		}
	}
}

// statusErr turns a per-entry status into an error (nil for OK).
func statusErr(s *spb.Status) error { return status.FromProto(s).Err() }

func TestZstdIdleUploadDroppedWithItsDecoder(t *testing.T) {
	// Why: a compressed upload nobody resumes holds a decoder goroutine
	// and a spool file in the real store; both go with the upload after
	// the idle timeout.
	e := newLocalEnv(t, grpcservers.Options{UploadIdleTimeout: time.Second})
	blob := mixedBlob(3<<20, 11)
	d := digest.OfBytes(blob)
	z := compression.Encode(zstd, nil, blob)
	name := digest.CompressedWriteResourceName("", "idle", "zstd", d)
	// A first call connects, so that the count below holds the
	// connection's own goroutines.
	_, err := e.bs.QueryWriteStatus(testutil.Context(t), &bspb.QueryWriteStatusRequest{ResourceName: name})
	wantCode(t, err, codes.NotFound, "")
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(testutil.Context(t))
	defer cancel()
	startWrite(ctx, t, e.bs, name, z, len(z)/2)
	cancel()
	if !testutil.Poll(10*time.Second, func() bool { return e.tempFiles(t) == 0 && runtime.NumGoroutine() <= base }) {
		t.Fatalf("%d temp files and %d goroutines (%d before) after the upload was dropped", e.tempFiles(t), runtime.NumGoroutine(), base)
	}
	_, err = e.bs.QueryWriteStatus(testutil.Context(t), &bspb.QueryWriteStatusRequest{ResourceName: name})
	wantCode(t, err, codes.NotFound, "")
}
