package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// dialUnix connects a gRPC client to the socket at path, closed when t ends.
func dialUnix(t testing.TB, path string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// blob is test content with its digest.
type blob struct {
	data []byte
	d    *repb.Digest
}

// randomBlob returns n random bytes and their SHA-256 digest. Safe to call
// from any goroutine (crypto/rand.Read does not fail).
func randomBlob(n int) blob {
	data := make([]byte, n)
	_, _ = rand.Read(data)
	return blobOf(data)
}

func blobOf(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{data: data, d: &repb.Digest{Hash: hex.EncodeToString(sum[:]), SizeBytes: int64(len(data))}}
}

// batchUpdate uploads blobs in one BatchUpdateBlobs call and fails on any
// per-blob error.
func batchUpdate(ctx context.Context, conn *grpc.ClientConn, blobs ...blob) error {
	req := &repb.BatchUpdateBlobsRequest{DigestFunction: repb.DigestFunction_SHA256}
	for _, b := range blobs {
		req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: b.d, Data: b.data})
	}
	resp, err := repb.NewContentAddressableStorageClient(conn).BatchUpdateBlobs(ctx, req)
	if err != nil {
		return err
	}
	for _, r := range resp.GetResponses() {
		if c := codes.Code(r.GetStatus().GetCode()); c != codes.OK {
			return fmt.Errorf("blob %s: %v %s", r.GetDigest().GetHash(), c, r.GetStatus().GetMessage())
		}
	}
	return nil
}

// writeChunk is the ByteStream chunk size the tests use.
const writeChunk = 256 << 10

// bytestreamWrite uploads b with ByteStream Write in chunks.
func bytestreamWrite(ctx context.Context, conn *grpc.ClientConn, b blob) error {
	stream, err := bspb.NewByteStreamClient(conn).Write(ctx)
	if err != nil {
		return err
	}
	name := uploadName(b)
	for off := 0; ; {
		end := min(off+writeChunk, len(b.data))
		req := &bspb.WriteRequest{WriteOffset: int64(off), Data: b.data[off:end], FinishWrite: end == len(b.data)}
		if off == 0 {
			req.ResourceName = name
		}
		if err := stream.Send(req); err != nil {
			break // the server answered early (blob exists) or failed: CloseAndRecv says which
		}
		if end == len(b.data) {
			break
		}
		off = end
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetCommittedSize() != b.d.GetSizeBytes() {
		return fmt.Errorf("committed %d of %d bytes", resp.GetCommittedSize(), b.d.GetSizeBytes())
	}
	return nil
}

func uploadName(b blob) string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	return fmt.Sprintf("uploads/%s/blobs/%s/%d", id, b.d.GetHash(), b.d.GetSizeBytes())
}

// readBlob reads d with ByteStream Read.
func readBlob(ctx context.Context, conn *grpc.ClientConn, d *repb.Digest) ([]byte, error) {
	return readResource(ctx, conn, fmt.Sprintf("blobs/%s/%d", d.GetHash(), d.GetSizeBytes()))
}

// readResource reads the ByteStream resource name whole.
func readResource(ctx context.Context, conn *grpc.ClientConn, name string) ([]byte, error) {
	stream, err := bspb.NewByteStreamClient(conn).Read(ctx, &bspb.ReadRequest{ResourceName: name})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
		buf.Write(resp.GetData())
	}
}

// findMissing asks which of ds the server lacks.
func findMissing(ctx context.Context, conn *grpc.ClientConn, ds ...*repb.Digest) ([]*repb.Digest, error) {
	resp, err := repb.NewContentAddressableStorageClient(conn).FindMissingBlobs(ctx, &repb.FindMissingBlobsRequest{
		BlobDigests: ds, DigestFunction: repb.DigestFunction_SHA256,
	})
	return resp.GetMissingBlobDigests(), err
}

// isNotFound reports whether err is a gRPC NOT_FOUND.
func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// scrape fetches the Prometheus text exposition from url.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(body)
}
