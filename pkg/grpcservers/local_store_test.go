package grpcservers_test

import (
	"path/filepath"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

// localConn serves the real local store over bufconn.
func localConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	return localConnOpts(t, func(*disk.Store) grpcservers.Options { return grpcservers.Options{} })
}

// localConnOpts is localConn with the server options opts returns for the store.
func localConnOpts(t *testing.T, opts func(*disk.Store) grpcservers.Options) *grpc.ClientConn {
	t.Helper()
	st, err := disk.Open(filepath.Join(t.TempDir(), "store"), disk.Options{InlineThreshold: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the server stops: cleanups run last first
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{CAS: st, ActionCache: func(instance string) store.ActionCache {
		return store.NewCompletenessCheckingActionCache(st.ActionCache(instance), st)
	}, Server: opts(st), Listen: testutil.ListenBufconn})
	return srv.Dial(t)
}

func TestLocalStoreDigestFunctionsSharing(t *testing.T) {
	// why: a SHA-256 client and a BLAKE3 client share castd's real store
	// (blobs, action cache, upload spool as castd wires it) without meeting.
	testSharing(t, localConnOpts(t, func(st *disk.Store) grpcservers.Options { return grpcservers.Options{Spooler: st} }))
}

func TestLocalStore(t *testing.T) {
	conn := localConn(t)
	cas, bs, ac := repb.NewContentAddressableStorageClient(conn), bspb.NewByteStreamClient(conn), repb.NewActionCacheClient(conn)
	small, large := []byte("small blob"), pattern(3<<20, 12)
	sd, ld := digest.OfBytes(small), digest.OfBytes(large)
	t.Run("batch with a wrong hash", func(t *testing.T) {
		// why: per-entry verification holds with the real store too.
		resp, err := cas.BatchUpdateBlobs(testutil.Context(t), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
			{Digest: sd.Proto(), Data: small}, {Digest: digest.OfBytes([]byte("other")).Proto(), Data: []byte("wrong")}}})
		if err != nil || resp.GetResponses()[0].GetStatus().GetCode() != 0 || codes.Code(resp.GetResponses()[1].GetStatus().GetCode()) != codes.InvalidArgument {
			t.Fatalf("got %v, %v", resp, err)
		}
	})
	t.Run("bytestream resume and read back", func(t *testing.T) {
		// why: a file-backed upload survives a broken stream and reads back with an offset.
		name := uploadName(ld)
		_, _ = writeChunks(testutil.Context(t), bs, name, large[:1<<20], 0, 256<<10, false)
		if got := committed(t, bs, name, 1<<20); got != 1<<20 {
			t.Fatalf("committed %d", got)
		}
		if _, err := writeChunks(testutil.Context(t), bs, name, large, 1<<20, 512<<10, true); err != nil {
			t.Fatal(err)
		}
		got, err := readBS(testutil.Context(t), bs, &bspb.ReadRequest{ResourceName: digest.ReadResourceName("", ld), ReadOffset: 5})
		if err != nil || string(got) != string(large[5:]) {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
	})
	t.Run("action result roundtrip", func(t *testing.T) {
		// why: a result whose outputs exist is served back.
		ar := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "s", Digest: sd.Proto()}, {Path: "l", Digest: ld.Proto()}}}
		action := digest.OfBytes([]byte("local action")).Proto()
		if _, err := ac.UpdateActionResult(testutil.Context(t), &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: ar}); err != nil {
			t.Fatal(err)
		}
		if _, err := ac.GetActionResult(testutil.Context(t), &repb.GetActionResultRequest{ActionDigest: action}); err != nil {
			t.Fatal(err)
		}
	})
}
