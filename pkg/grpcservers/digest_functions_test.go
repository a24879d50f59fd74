package grpcservers_test

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/uuid"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/grpcservers"
)

// otherFunctions are the digest functions besides SHA-256.
var otherFunctions = []digest.Function{digest.SHA1, digest.MD5, digest.SHA384, digest.SHA512, digest.BLAKE3}

// fnClient is a REAPI client speaking one digest function. named says
// whether its requests set digest_function and its resource names carry
// the {digest_function}/ segment; an old SHA-256 client (REAPI < 2.3)
// does neither.
type fnClient struct {
	fn    digest.Function
	named bool
	cas   repb.ContentAddressableStorageClient
	bs    bspb.ByteStreamClient
	ac    repb.ActionCacheClient
}

func newFnClient(conn grpc.ClientConnInterface, fn digest.Function, named bool) *fnClient {
	return &fnClient{fn: fn, named: named, cas: repb.NewContentAddressableStorageClient(conn),
		bs: bspb.NewByteStreamClient(conn), ac: repb.NewActionCacheClient(conn)}
}

// field is what the client puts in digest_function.
func (c *fnClient) field() repb.DigestFunction_Value {
	if c.named {
		return c.fn.Proto()
	}
	return repb.DigestFunction_UNKNOWN
}

// of is the digest of b under the client's function.
func (c *fnClient) of(b []byte) digest.Digest { return digest.OfBytesIn(c.fn, b) }

// as is d's hash and size taken as a digest of the client's function: how
// this client names a blob whose hex another client's function produced.
func (c *fnClient) as(d digest.Digest) digest.Digest {
	return digest.Digest{Hash: d.Hash, Size: d.Size, Func: c.fn}
}

// blobPath is "{digest_function/}{hash}/{size}" as the client writes it.
func (c *fnClient) blobPath(d digest.Digest) string {
	p := d.Hash + "/" + strconv.FormatInt(d.Size, 10)
	if c.named {
		return c.fn.String() + "/" + p
	}
	return p
}

func (c *fnClient) readName(d digest.Digest) string { return "main/blobs/" + c.blobPath(d) }

func (c *fnClient) writeName(d digest.Digest) string {
	return "main/uploads/" + uuid.NewString() + "/blobs/" + c.blobPath(d)
}

func (c *fnClient) zstdReadName(d digest.Digest) string {
	return "main/compressed-blobs/zstd/" + c.blobPath(d)
}

func (c *fnClient) zstdWriteName(d digest.Digest) string {
	return "main/uploads/" + uuid.NewString() + "/compressed-blobs/zstd/" + c.blobPath(d)
}

// missing is FindMissingBlobs over ds.
func (c *fnClient) missing(t *testing.T, ds ...digest.Digest) ([]digest.Digest, error) {
	t.Helper()
	req := &repb.FindMissingBlobsRequest{InstanceName: "main", DigestFunction: c.field()}
	for _, d := range ds {
		req.BlobDigests = append(req.BlobDigests, d.Proto())
	}
	resp, err := c.cas.FindMissingBlobs(testutil.Context(t), req)
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, p := range resp.GetMissingBlobDigests() {
		out = append(out, c.as(digest.Digest{Hash: p.GetHash(), Size: p.GetSizeBytes()}))
	}
	return out, nil
}

// wantMissing fails unless FindMissingBlobs over ds answers exactly want.
func (c *fnClient) wantMissing(t *testing.T, ds []digest.Digest, want ...digest.Digest) {
	t.Helper()
	got, err := c.missing(t, ds...)
	if err != nil {
		t.Fatalf("%s client: FindMissingBlobs: %v", c.fn, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s client: missing %v, want %v", c.fn, got, want)
	}
}

// update uploads blob under d with BatchUpdateBlobs (zstd-compressed when
// c says so) and returns the entry's status.
func (c *fnClient) update(t *testing.T, d digest.Digest, blob []byte, comp repb.Compressor_Value) error {
	t.Helper()
	if comp != repb.Compressor_IDENTITY {
		blob = compression.Encode(comp, nil, blob)
	}
	resp, err := c.cas.BatchUpdateBlobs(testutil.Context(t), &repb.BatchUpdateBlobsRequest{InstanceName: "main", DigestFunction: c.field(),
		Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d.Proto(), Data: blob, Compressor: comp}}})
	if err != nil {
		return err
	}
	return statusErr(resp.GetResponses()[0].GetStatus())
}

// read reads d with BatchReadBlobs and returns the entry's data and status.
func (c *fnClient) read(t *testing.T, d digest.Digest) ([]byte, error) {
	t.Helper()
	resp, err := c.cas.BatchReadBlobs(testutil.Context(t), &repb.BatchReadBlobsRequest{InstanceName: "main", DigestFunction: c.field(),
		Digests: []*repb.Digest{d.Proto()}})
	if err != nil {
		return nil, err
	}
	r := resp.GetResponses()[0]
	return r.GetData(), statusErr(r.GetStatus())
}

// readBack fails unless d reads back as blob through BatchReadBlobs,
// ByteStream and compressed ByteStream.
func (c *fnClient) readBack(t *testing.T, d digest.Digest, blob []byte) {
	t.Helper()
	ctx := testutil.Context(t)
	if got, err := c.read(t, d); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("%s: BatchReadBlobs %s: %d bytes, %v", c.fn, d, len(got), err)
	}
	if got, err := readBS(ctx, c.bs, &bspb.ReadRequest{ResourceName: c.readName(d)}); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("%s: ByteStream read %s: %d bytes, %v", c.fn, c.readName(d), len(got), err)
	}
	z, err := readBS(ctx, c.bs, &bspb.ReadRequest{ResourceName: c.zstdReadName(d)})
	if err != nil {
		t.Fatalf("%s: compressed read %s: %v", c.fn, c.zstdReadName(d), err)
	}
	if !bytes.Equal(unzstd(t, z, d.Size), blob) {
		t.Fatalf("%s: compressed read %s decodes to other bytes", c.fn, c.zstdReadName(d))
	}
}

// wantAbsent fails unless d is a miss for every read c can make.
func (c *fnClient) wantAbsent(t *testing.T, d digest.Digest) {
	t.Helper()
	c.wantMissing(t, []digest.Digest{d}, d)
	_, err := c.read(t, d)
	wantCode(t, err, codes.NotFound, "")
	_, err = readBS(testutil.Context(t), c.bs, &bspb.ReadRequest{ResourceName: c.readName(d)})
	wantCode(t, err, codes.NotFound, "")
	_, err = readBS(testutil.Context(t), c.bs, &bspb.ReadRequest{ResourceName: c.zstdReadName(d)})
	wantCode(t, err, codes.NotFound, "")
}

// writeResumed uploads blob under d with ByteStream in two streams: the
// first sends half and half-closes without finish_write, the second
// resumes from the committed_size QueryWriteStatus reports.
func (c *fnClient) writeResumed(t *testing.T, d digest.Digest, blob []byte) {
	t.Helper()
	name, half := c.writeName(d), int64(len(blob)/2)
	_, err := writeChunks(testutil.Context(t), c.bs, name, blob[:half], 0, 64<<10, false)
	wantCode(t, err, codes.InvalidArgument, "finish_write")
	if got := committed(t, c.bs, name, half); got != half {
		t.Fatalf("%s: committed %d, want %d", name, got, half)
	}
	resp, err := writeChunks(testutil.Context(t), c.bs, name, blob, half, 64<<10, true)
	if err != nil || resp.GetCommittedSize() != d.Size {
		t.Fatalf("%s: resumed write: %v, committed %d", name, err, resp.GetCommittedSize())
	}
}

func TestDigestFunctionsRoundTrip(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	for i, fn := range otherFunctions {
		t.Run(fn.String(), func(t *testing.T) {
			c := newFnClient(e.conn, fn, true)
			small, large := pattern(3000, byte(10*i)), mixedBlob(600<<10, byte(10*i+1))
			ds, dl := c.of(small), c.of(large)
			// why: a blob is stored, found and read under the function its client names.
			c.wantMissing(t, []digest.Digest{ds, dl}, ds, dl)
			if err := c.update(t, ds, small, repb.Compressor_IDENTITY); err != nil {
				t.Fatalf("BatchUpdateBlobs: %v", err)
			}
			if !e.has(t, ds) || e.has(t, digest.Digest{Hash: ds.Hash, Size: ds.Size}) {
				t.Fatalf("not stored under %s alone", fn)
			}
			c.wantMissing(t, []digest.Digest{ds, dl}, dl)
			c.readBack(t, ds, small)
			// why: a compressed batch entry is verified under the request's function too.
			zb := mixedBlob(5000, byte(10*i+2))
			if err := c.update(t, c.of(zb), zb, repb.Compressor_ZSTD); err != nil {
				t.Fatalf("compressed BatchUpdateBlobs: %v", err)
			}
			c.readBack(t, c.of(zb), zb)
			// why: ByteStream writes name the function in the resource name; a
			// chunked write goes through the upload spool, which verifies with it.
			if _, err := writeChunks(testutil.Context(t), c.bs, c.writeName(dl), large, 0, 128<<10, true); err != nil {
				t.Fatalf("ByteStream write: %v", err)
			}
			c.wantMissing(t, []digest.Digest{ds, dl})
			c.readBack(t, dl, large)
			// why: a whole blob in one request is stored without the spool.
			one := pattern(2000, byte(10*i+3))
			if _, err := writeChunks(testutil.Context(t), c.bs, c.writeName(c.of(one)), one, 0, len(one), true); err != nil {
				t.Fatalf("one-request ByteStream write: %v", err)
			}
			c.readBack(t, c.of(one), one)
			// why: compressed-blobs writes, small (decoded whole) and chunked (inflated into the spool).
			for j, n := range []int{4000, 700 << 10} {
				blob := mixedBlob(n, byte(10*i+4+j))
				z := compression.Encode(zstd, nil, blob)
				resp, err := writeChunks(testutil.Context(t), c.bs, c.zstdWriteName(c.of(blob)), z, 0, 32<<10, true)
				if err != nil || resp.GetCommittedSize() != int64(len(z)) {
					t.Fatalf("compressed write of %d bytes: %v, committed %d", n, err, resp.GetCommittedSize())
				}
				c.readBack(t, c.of(blob), blob)
			}
			// why: a resumed write continues the upload of the same function.
			resumed := mixedBlob(300<<10, byte(10*i+7))
			c.writeResumed(t, c.of(resumed), resumed)
			c.readBack(t, c.of(resumed), resumed)
			// why: a blob whose bytes do not hash to its digest under fn is refused.
			wrong := bytes.Clone(small)
			wrong[0]++
			wantCode(t, c.update(t, ds, wrong, repb.Compressor_IDENTITY), codes.InvalidArgument, "")
			unstored := pattern(200<<10, byte(10*i+8))
			du := c.of(unstored)
			unstored[len(unstored)-1]++
			_, err := writeChunks(testutil.Context(t), c.bs, c.writeName(du), unstored, 0, 64<<10, true)
			wantCode(t, err, codes.InvalidArgument, "")
			if e.has(t, du) {
				t.Fatal("wrong bytes stored")
			}
		})
	}
}

func TestDigestFunctionInferred(t *testing.T) {
	// why: a request that leaves digest_function unset (REAPI < 2.3, or a
	// 2.3 client relying on inference) is served under the function its
	// hash length implies; a 64-character hash is SHA-256, never BLAKE3.
	e := newEnv(t, grpcservers.Options{})
	for i, fn := range []digest.Function{digest.SHA1, digest.MD5, digest.SHA384, digest.SHA512} {
		c := newFnClient(e.conn, fn, false)
		blob := pattern(1000, byte(i))
		d := c.of(blob)
		if err := c.update(t, d, blob, repb.Compressor_IDENTITY); err != nil {
			t.Fatalf("%s: BatchUpdateBlobs: %v", fn, err)
		}
		if !e.has(t, d) {
			t.Fatalf("%s: not stored under %s", fn, fn)
		}
		c.readBack(t, d, blob)
	}
	blob := []byte("a BLAKE3 client that forgot digest_function")
	b3 := digest.OfBytesIn(digest.BLAKE3, blob)
	old := newFnClient(e.conn, digest.BLAKE3, false) // unnamed: its hashes are taken as SHA-256
	err := old.update(t, b3, blob, repb.Compressor_IDENTITY)
	wantCode(t, err, codes.InvalidArgument, "")
	_, err = writeChunks(testutil.Context(t), old.bs, old.writeName(b3), blob, 0, len(blob), true)
	wantCode(t, err, codes.InvalidArgument, "")
	if e.has(t, b3) || e.has(t, digest.Digest{Hash: b3.Hash, Size: b3.Size}) {
		t.Fatal("a BLAKE3 blob sent without digest_function was stored")
	}
	// The same requests naming BLAKE3 store it, under BLAKE3 only.
	named := newFnClient(e.conn, digest.BLAKE3, true)
	if err := named.update(t, b3, blob, repb.Compressor_IDENTITY); err != nil {
		t.Fatal(err)
	}
	if !e.has(t, b3) || e.has(t, digest.Digest{Hash: b3.Hash, Size: b3.Size}) {
		t.Fatal("not stored under BLAKE3 alone")
	}
}

// sharedClients returns a SHA-256 client that leaves digest_function
// unset (as Bazel before REAPI 2.3) and a BLAKE3 client, both of conn.
func sharedClients(conn grpc.ClientConnInterface) (sha, b3 *fnClient) {
	return newFnClient(conn, digest.SHA256, false), newFnClient(conn, digest.BLAKE3, true)
}

// testSharing is "a SHA-256 client and a BLAKE3 client sharing one castd
// without meeting" against the server conn dials.
func testSharing(t *testing.T, conn grpc.ClientConnInterface) {
	sha, b3 := sharedClients(conn)
	ctx := testutil.Context(t)
	small, large := []byte("the same bytes, two functions"), mixedBlob(500<<10, 77)
	sd, sl := sha.of(small), sha.of(large)
	bd, bl := b3.of(small), b3.of(large)
	// why: the SHA-256 client uploads first; the BLAKE3 client still misses
	// its own digests of the same bytes, and the SHA-256 hex taken as BLAKE3.
	if err := sha.update(t, sd, small, repb.Compressor_IDENTITY); err != nil {
		t.Fatal(err)
	}
	if _, err := writeChunks(ctx, sha.bs, sha.writeName(sl), large, 0, 100<<10, true); err != nil {
		t.Fatal(err)
	}
	sha.wantMissing(t, []digest.Digest{sd, sl})
	b3.wantMissing(t, []digest.Digest{bd, bl, b3.as(sd), b3.as(sl)}, bd, bl, b3.as(sd), b3.as(sl))
	b3.wantAbsent(t, b3.as(sd))
	b3.wantAbsent(t, b3.as(sl))
	// why: an upload of the SHA-256 hex as BLAKE3 does not verify, whatever
	// the SHA-256 side holds under that hex.
	wantCode(t, b3.update(t, b3.as(sd), small, repb.Compressor_IDENTITY), codes.InvalidArgument, "")
	_, err := writeChunks(ctx, b3.bs, b3.writeName(b3.as(sd)), small, 0, len(small), true)
	wantCode(t, err, codes.InvalidArgument, "")
	// why: an upload session is per function: the BLAKE3 client's upload
	// of the SHA-256 hex under the same uuid is not the SHA-256 one's.
	id := uuid.NewString()
	half := sl.Size / 2
	sl2 := sha.of(large[:half+1])
	shaName := "main/uploads/" + id + "/blobs/" + sha.blobPath(sl2)
	_, err = writeChunks(ctx, sha.bs, shaName, large[:half], 0, 100<<10, false)
	wantCode(t, err, codes.InvalidArgument, "finish_write")
	if got := committed(t, sha.bs, shaName, half); got != half {
		t.Fatalf("SHA-256 upload committed %d, want %d", got, half)
	}
	b3Name := "main/uploads/" + id + "/blobs/" + b3.blobPath(b3.as(sl2))
	_, err = sha.bs.QueryWriteStatus(ctx, &bspb.QueryWriteStatusRequest{ResourceName: b3Name})
	wantCode(t, err, codes.NotFound, "")
	_, err = writeChunks(ctx, b3.bs, b3Name, large[:half+1], half, 100<<10, true)
	wantCode(t, err, codes.InvalidArgument, "write_offset")
	// why: now the BLAKE3 client uploads the same bytes; each side sees its
	// own blobs and misses the other's hex.
	if err := b3.update(t, bd, small, repb.Compressor_IDENTITY); err != nil {
		t.Fatal(err)
	}
	if _, err := writeChunks(ctx, b3.bs, b3.writeName(bl), large, 0, 100<<10, true); err != nil {
		t.Fatal(err)
	}
	b3.wantMissing(t, []digest.Digest{bd, bl, b3.as(sd), b3.as(sl)}, b3.as(sd), b3.as(sl))
	sha.wantMissing(t, []digest.Digest{sd, sl, sha.as(bd), sha.as(bl)}, sha.as(bd), sha.as(bl))
	sha.wantAbsent(t, sha.as(bd))
	sha.wantAbsent(t, sha.as(bl))
	b3.readBack(t, bd, small)
	b3.readBack(t, bl, large)
	sha.readBack(t, sd, small)
	sha.readBack(t, sl, large)

	// why: an action result under a BLAKE3 action digest, whose outputs are
	// BLAKE3 digests, is served to the BLAKE3 client and missed by the
	// SHA-256 client looking up the same hex.
	action := b3.of([]byte("action"))
	ar := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "s", Digest: bd.Proto()}, {Path: "l", Digest: bl.Proto()}}, StdoutDigest: bd.Proto()}
	if _, err := b3.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{InstanceName: "main", DigestFunction: b3.field(), ActionDigest: action.Proto(), ActionResult: ar}); err != nil {
		t.Fatal(err)
	}
	got, err := b3.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: "main", DigestFunction: b3.field(), ActionDigest: action.Proto()})
	if err != nil || !proto.Equal(got, ar) {
		t.Fatalf("BLAKE3 GetActionResult = %v, %v", got, err)
	}
	_, err = sha.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: "main", ActionDigest: action.Proto()})
	wantCode(t, err, codes.NotFound, "")
	// why: the SHA-256 client's result under the same hex is another entry.
	shaAR := &repb.ActionResult{ExitCode: 3, OutputFiles: []*repb.OutputFile{{Path: "s", Digest: sd.Proto()}}}
	if _, err := sha.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{InstanceName: "main", ActionDigest: action.Proto(), ActionResult: shaAR}); err != nil {
		t.Fatal(err)
	}
	if got, err := b3.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: "main", DigestFunction: b3.field(), ActionDigest: action.Proto()}); err != nil || !proto.Equal(got, ar) {
		t.Fatalf("BLAKE3 GetActionResult after the SHA-256 update = %v, %v", got, err)
	}
	if got, err := sha.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: "main", ActionDigest: action.Proto()}); err != nil || !proto.Equal(got, shaAR) {
		t.Fatalf("SHA-256 GetActionResult = %v, %v", got, err)
	}
}

func TestDigestFunctionsSharing(t *testing.T) {
	// Over the memory store, with the completeness check castd puts in
	// front of action caches (it reads the outputs under the action's function).
	mem := store.NewMemory()
	conn := testutil.StartREAPI(t, testutil.REAPIOptions{CAS: mem, ActionCache: func(string) store.ActionCache {
		return store.NewCompletenessCheckingActionCache(mem, mem)
	}, Listen: testutil.ListenBufconn}).Dial(t)
	testSharing(t, conn)
}

func TestDigestFunctionActionResultDigests(t *testing.T) {
	// why: every digest of an ActionResult is parsed under the request's
	// function; one of another function's length is INVALID_ARGUMENT naming the field.
	e := newEnv(t, grpcservers.Options{})
	b3 := newFnClient(e.conn, digest.BLAKE3, true)
	action, out := b3.of([]byte("act")), b3.of([]byte("out"))
	sha1 := digest.OfBytesIn(digest.SHA1, []byte("out")).Proto()
	for _, tc := range []struct {
		ar    *repb.ActionResult
		field string
	}{
		{&repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "a", Digest: out.Proto()}, {Path: "b", Digest: sha1}}}, "action_result.output_files[1].digest"},
		{&repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: sha1}}}, "action_result.output_directories[0].tree_digest"},
		{&repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: out.Proto(), RootDirectoryDigest: sha1}}}, "action_result.output_directories[0].root_directory_digest"},
		{&repb.ActionResult{StdoutDigest: sha1}, "action_result.stdout_digest"},
		{&repb.ActionResult{StderrDigest: sha1}, "action_result.stderr_digest"},
	} {
		_, err := b3.ac.UpdateActionResult(testutil.Context(t), &repb.UpdateActionResultRequest{DigestFunction: b3.field(), ActionDigest: action.Proto(), ActionResult: tc.ar})
		wantCode(t, err, codes.InvalidArgument, tc.field)
	}
	// Digests of the request's function are accepted, whatever their length.
	s1 := newFnClient(e.conn, digest.SHA384, true)
	ar := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "a", Digest: s1.of([]byte("a")).Proto()}},
		OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: s1.of([]byte("t")).Proto(), RootDirectoryDigest: s1.of([]byte("r")).Proto()}},
		StdoutDigest:      s1.of([]byte("o")).Proto(), StderrDigest: s1.of([]byte("e")).Proto()}
	if _, err := s1.ac.UpdateActionResult(testutil.Context(t), &repb.UpdateActionResultRequest{DigestFunction: s1.field(), ActionDigest: s1.of([]byte("act")).Proto(), ActionResult: ar}); err != nil {
		t.Fatalf("SHA-384 UpdateActionResult: %v", err)
	}
	// The action digest itself: a SHA-1 hash under digest_function BLAKE3.
	_, err := b3.ac.GetActionResult(testutil.Context(t), &repb.GetActionResultRequest{DigestFunction: b3.field(), ActionDigest: sha1})
	wantCode(t, err, codes.InvalidArgument, "action_digest")
	// And a batch entry or a FindMissingBlobs digest.
	_, err = b3.missing(t, out, digest.OfBytesIn(digest.SHA1, []byte("out")))
	wantCode(t, err, codes.InvalidArgument, "blob_digests[1]")
	_, err = b3.read(t, digest.OfBytesIn(digest.SHA1, []byte("out")))
	wantCode(t, err, codes.InvalidArgument, "digests[0]")
	err = b3.update(t, digest.OfBytesIn(digest.SHA1, []byte("out")), []byte("out"), repb.Compressor_IDENTITY)
	wantCode(t, err, codes.InvalidArgument, "requests[0].digest")
}

func TestDigestFunctionsRestricted(t *testing.T) {
	// why: cache.digest-functions limits what clients may use: a function it
	// leaves out is INVALID_ARGUMENT naming digest_function on every call,
	// named in the request, in a resource name or inferred from a hash.
	e := newEnv(t, grpcservers.Options{DigestFunctions: digest.SetOf(digest.SHA256)})
	ctx := testutil.Context(t)
	blob := []byte("refused")
	for _, c := range []*fnClient{newFnClient(e.conn, digest.BLAKE3, true), newFnClient(e.conn, digest.SHA1, true), newFnClient(e.conn, digest.SHA1, false)} {
		d := c.of(blob)
		_, err := c.missing(t, d)
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		wantCode(t, c.update(t, d, blob, repb.Compressor_IDENTITY), codes.InvalidArgument, "digest_function")
		_, err = c.read(t, d)
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		_, err = readBS(ctx, c.bs, &bspb.ReadRequest{ResourceName: c.readName(d)})
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		_, err = readBS(ctx, c.bs, &bspb.ReadRequest{ResourceName: c.zstdReadName(d)})
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		_, err = writeChunks(ctx, c.bs, c.writeName(d), blob, 0, len(blob), true)
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		_, err = writeChunks(ctx, c.bs, c.zstdWriteName(d), compression.Encode(zstd, nil, blob), 0, 1<<20, true)
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		_, err = c.bs.QueryWriteStatus(ctx, &bspb.QueryWriteStatusRequest{ResourceName: c.writeName(d)})
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		_, err = c.ac.GetActionResult(ctx, &repb.GetActionResultRequest{DigestFunction: c.field(), ActionDigest: d.Proto()})
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		_, err = c.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{DigestFunction: c.field(), ActionDigest: d.Proto(), ActionResult: &repb.ActionResult{}})
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		stream, err := c.cas.GetTree(ctx, &repb.GetTreeRequest{DigestFunction: c.field(), RootDigest: d.Proto()})
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, err, codes.InvalidArgument, "digest_function")
		if e.has(t, d) {
			t.Fatalf("%s blob stored", c.fn)
		}
	}
	// A function castd does not verify at all.
	_, err := e.cas.FindMissingBlobs(ctx, &repb.FindMissingBlobsRequest{DigestFunction: repb.DigestFunction_MURMUR3})
	wantCode(t, err, codes.InvalidArgument, "digest_function")
	// SHA-256 is still served.
	sha := newFnClient(e.conn, digest.SHA256, true)
	if err := sha.update(t, sha.of(blob), blob, repb.Compressor_IDENTITY); err != nil {
		t.Fatal(err)
	}
	sha.readBack(t, sha.of(blob), blob)
}

func TestGetTreeBLAKE3(t *testing.T) {
	// why: GetTree walks a BLAKE3 tree under BLAKE3: the root and every
	// child directory digest, which exist only as BLAKE3 blobs.
	e := newEnv(t, grpcservers.Options{})
	put := func(dir *repb.Directory) *repb.Digest {
		d, b, err := digest.OfMessageIn(digest.BLAKE3, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.mem.Put(testutil.Context(t), d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return d.Proto()
	}
	file := digest.EmptyIn(digest.BLAKE3).Proto()
	c := &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: file}}}
	cd := put(c)
	a := &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "c", Digest: cd}}}
	ad := put(a)
	root := &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "a", Digest: ad}, {Name: "c", Digest: cd}}}
	rd := put(root)
	walk := func(fn repb.DigestFunction_Value, token string) ([]*repb.Directory, string, error) {
		stream, err := e.cas.GetTree(testutil.Context(t), &repb.GetTreeRequest{DigestFunction: fn, RootDigest: rd, PageSize: 2, PageToken: token})
		if err != nil {
			return nil, "", err
		}
		var dirs []*repb.Directory
		var next string
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				return dirs, next, nil
			}
			if err != nil {
				return dirs, next, err
			}
			dirs, next = append(dirs, resp.GetDirectories()...), resp.GetNextPageToken()
			if next != "" {
				return dirs, next, nil
			}
		}
	}
	dirs, next, err := walk(repb.DigestFunction_BLAKE3, "")
	if err != nil || len(dirs) != 2 || !proto.Equal(dirs[0], root) || !proto.Equal(dirs[1], a) || next == "" {
		t.Fatalf("first page: %v, next %q, %v", dirs, next, err)
	}
	dirs, next, err = walk(repb.DigestFunction_BLAKE3, next)
	if err != nil || len(dirs) != 1 || !proto.Equal(dirs[0], c) || next != "" {
		t.Fatalf("second page: %v, next %q, %v", dirs, next, err)
	}
	// The same hex taken as SHA-256 (digest_function unset) is a miss.
	_, _, err = walk(repb.DigestFunction_UNKNOWN, "")
	wantCode(t, err, codes.NotFound, "")
	// A child digest of another function's length is named.
	bad := put(&repb.Directory{Directories: []*repb.DirectoryNode{{Name: "x", Digest: digest.OfBytesIn(digest.SHA1, nil).Proto()}}})
	stream, err := e.cas.GetTree(testutil.Context(t), &repb.GetTreeRequest{DigestFunction: repb.DigestFunction_BLAKE3, RootDigest: bad})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "directories[0].digest")
}

func TestCapabilitiesExecutionDigestFunctions(t *testing.T) {
	// why: a client picks its digest function from these lists; with
	// execution enabled both list the functions the cache accepts, and the
	// deprecated single field stays SHA-256 for old clients.
	fns := digest.SetOf(digest.SHA256, digest.BLAKE3)
	e := newEnv(t, grpcservers.Options{DigestFunctions: fns, Execution: repb.UnimplementedExecutionServer{}})
	c, err := e.caps.GetCapabilities(testutil.Context(t), &repb.GetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(fns.Protos())
	if got := fmt.Sprint(c.GetCacheCapabilities().GetDigestFunctions()); got != want {
		t.Errorf("cache digest_functions = %s, want %s", got, want)
	}
	ec := c.GetExecutionCapabilities()
	if got := fmt.Sprint(ec.GetDigestFunctions()); got != want || !ec.GetExecEnabled() || ec.GetDigestFunction() != repb.DigestFunction_SHA256 {
		t.Errorf("execution capabilities = %v, want digest_functions %s", ec, want)
	}
}

func TestCapabilitiesSupportedNodeProperties(t *testing.T) {
	// why: a REAPI 2.1+ client learns from supported_node_properties which
	// output_node_properties it may ask for; castd's local execution
	// captures mtime and unix_mode. Without execution there is nothing to
	// capture, so nothing is listed.
	for _, tc := range []struct {
		name string
		exec repb.ExecutionServer
		want []string
	}{
		{"execution", repb.UnimplementedExecutionServer{}, []string{"mtime", "unix_mode"}},
		{"cache only", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, grpcservers.Options{Execution: tc.exec})
			c, err := e.caps.GetCapabilities(testutil.Context(t), &repb.GetCapabilitiesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.GetExecutionCapabilities().GetSupportedNodeProperties(); !slices.Equal(got, tc.want) {
				t.Errorf("supported_node_properties = %q, want %q", got, tc.want)
			}
		})
	}
}
