package grpcservers_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/testutil"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

// localEnv is an in-process server over the real local store, whose temp
// directory also holds the upload spool files (as in castd).
type localEnv struct {
	st  *disk.Store
	cas repb.ContentAddressableStorageClient
	bs  bspb.ByteStreamClient
}

func newLocalEnv(t *testing.T, opts grpcservers.Options) *localEnv {
	t.Helper()
	st, err := disk.Open(filepath.Join(t.TempDir(), "store"), disk.Options{InlineThreshold: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newLocalEnvOver(t, st, opts)
}

// newLocalEnvOver serves st, which the caller closes.
func newLocalEnvOver(t *testing.T, st *disk.Store, opts grpcservers.Options) *localEnv {
	t.Helper()
	opts.Spooler = st // as castd wires it
	conn := testutil.StartREAPI(t, testutil.REAPIOptions{CAS: st, Server: opts, Listen: testutil.ListenBufconn}).Dial(t)
	return &localEnv{st: st, cas: repb.NewContentAddressableStorageClient(conn), bs: bspb.NewByteStreamClient(conn)}
}

// tempFiles counts the files in the store's temp directory.
func (e *localEnv) tempFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(e.st.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// startWrite opens a Write stream of data under name, sends its first n
// bytes and waits until the server holds them.
func startWrite(ctx context.Context, t *testing.T, bs bspb.ByteStreamClient, name string, data []byte, n int) bspb.ByteStream_WriteClient {
	t.Helper()
	stream, err := bs.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&bspb.WriteRequest{ResourceName: name, Data: data[:n]}); err != nil {
		t.Fatal(err)
	}
	held := testutil.Poll(10*time.Second, func() bool {
		var st *bspb.QueryWriteStatusResponse
		st, err = bs.QueryWriteStatus(ctx, &bspb.QueryWriteStatusRequest{ResourceName: name})
		return err == nil && st.GetCommittedSize() == int64(n)
	})
	if !held {
		t.Fatalf("%s: the server does not report %d bytes committed: %v", name, n, err)
	}
	return stream
}

func TestByteStreamCancelledWritesReleaseFDs(t *testing.T) {
	// why: a client that cancels mid-upload must not leave an fd, and at most MaxIdleUploads partial files, behind.
	const streams, maxIdle = 40, 4
	e := newLocalEnv(t, grpcservers.Options{UploadIdleTimeout: time.Hour, MaxIdleUploads: maxIdle})
	baseFDs := openFDs(t)
	ctx, cancel := context.WithCancel(testutil.Context(t))
	defer cancel()
	for i := range streams {
		data := pattern(1<<20, byte(i))
		startWrite(ctx, t, e.bs, uploadName(digest.OfBytes(data)), data, 512<<10)
	}
	// Other tests' stores may still be closing files: compare with the
	// count while the uploads are open, allowing for a little drift.
	held := openFDs(t)
	if held < baseFDs+streams-5 {
		t.Fatalf("%d fds while %d uploads are open, %d before: want about one per upload", held, streams, baseFDs)
	}
	cancel()
	if !testutil.Poll(10*time.Second, func() bool { return openFDs(t) <= held-streams+2 }) {
		t.Fatalf("%d fds after every upload was cancelled; %d while they were open, %d before", openFDs(t), held, baseFDs)
	}
	if !testutil.Poll(10*time.Second, func() bool { return e.tempFiles(t) <= maxIdle }) {
		t.Fatalf("%d temp files after %d cancelled uploads, want at most MaxIdleUploads %d", e.tempFiles(t), streams, maxIdle)
	}
}

func TestByteStreamIdleUploadDropped(t *testing.T) {
	data := pattern(1<<20, 21)
	d := digest.OfBytes(data)
	tests := []struct {
		name, why string
		leave     func(t *testing.T, stream bspb.ByteStream_WriteClient, cancel context.CancelFunc)
	}{
		{"stream kept open", "a client that stops sending is disconnected, and its upload dropped, after the idle timeout",
			func(t *testing.T, stream bspb.ByteStream_WriteClient, _ context.CancelFunc) {
				err := stream.RecvMsg(new(bspb.WriteResponse)) // returns once the server ends the call
				wantCode(t, err, codes.DeadlineExceeded, "no write request")
			}},
		{"stream cancelled", "an upload nobody resumes is dropped after the idle timeout",
			func(_ *testing.T, _ bspb.ByteStream_WriteClient, cancel context.CancelFunc) { cancel() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			e := newLocalEnv(t, grpcservers.Options{UploadIdleTimeout: time.Second})
			ctx, cancel := context.WithCancel(testutil.Context(t))
			defer cancel()
			name := uploadName(d)
			stream := startWrite(ctx, t, e.bs, name, data, 1000)
			tc.leave(t, stream, cancel)
			if !testutil.Poll(10*time.Second, func() bool { return e.tempFiles(t) == 0 }) {
				t.Fatalf("%d temp files left after the upload was dropped", e.tempFiles(t))
			}
			_, err := e.bs.QueryWriteStatus(testutil.Context(t), &bspb.QueryWriteStatusRequest{ResourceName: name})
			wantCode(t, err, codes.NotFound, "")
		})
	}
}

func TestByteStreamSecondWriterNotBlocked(t *testing.T) {
	tests := []struct {
		name, why string
		size      int
		leave     func(cancel context.CancelFunc)
	}{
		{"large blob, first stream held open", "an idle first writer holds no claim on the blob", 2 << 20, func(context.CancelFunc) {}},
		{"small blob, first stream held open", "nor does it for a blob kept in a pack", 8 << 10, func(context.CancelFunc) {}},
		{"large blob, first stream cancelled", "nor does an upload kept for resumption", 2 << 20, func(cancel context.CancelFunc) { cancel() }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			e := newLocalEnv(t, grpcservers.Options{UploadIdleTimeout: time.Hour})
			data := pattern(tc.size, byte(30+i))
			d := digest.OfBytes(data)
			first, cancelFirst := context.WithCancel(testutil.Context(t))
			defer cancelFirst()
			stream := startWrite(first, t, e.bs, uploadName(d), data, tc.size/2)
			tc.leave(cancelFirst)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{
				Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d.Proto(), Data: data}}})
			if err != nil || resp.GetResponses()[0].GetStatus().GetCode() != int32(codes.OK) {
				t.Fatalf("BatchUpdateBlobs while another upload is open: %v %v", err, resp)
			}
			wr, err := writeChunks(ctx, e.bs, uploadName(d), data, 0, 64<<10, true)
			if err != nil || wr.GetCommittedSize() != d.Size {
				t.Fatalf("Write under a new upload id while another is open: %v, committed %d", err, wr.GetCommittedSize())
			}
			if first.Err() == nil { // the first writer finishes: the blob exists, so it succeeds too
				if err := stream.Send(&bspb.WriteRequest{WriteOffset: int64(tc.size / 2), Data: data[tc.size/2:], FinishWrite: true}); err != nil {
					t.Fatal(err)
				}
				if wr, err := stream.CloseAndRecv(); err != nil || wr.GetCommittedSize() != d.Size {
					t.Fatalf("first writer: %v, committed %d", err, wr.GetCommittedSize())
				}
			}
		})
	}
}

func TestByteStreamResourceSizeSign(t *testing.T) {
	// why: "+29" parses as 29 with strconv, but is not a size a client may write in a resource name.
	e := newEnv(t, grpcservers.Options{})
	d := digest.OfBytes([]byte("x"))
	name := "main/uploads/u-1/blobs/" + d.Hash + "/+1"
	_, err := writeChunks(testutil.Context(t), e.bs, name, []byte("x"), 0, 1, true)
	wantCode(t, err, codes.InvalidArgument, "resource_name")
	_, err = readBS(testutil.Context(t), e.bs, &bspb.ReadRequest{ResourceName: "main/blobs/" + d.Hash + "/+1"})
	wantCode(t, err, codes.InvalidArgument, "resource_name")
}

func TestByteStreamOpenUploadReservesNothing(t *testing.T) {
	// why: on a small quota, space reserved for an upload that may never finish pushed stored blobs out.
	st, err := disk.Open(filepath.Join(t.TempDir(), "store"), disk.Options{InlineThreshold: 4 << 10, QuotaBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var stored []digest.Digest
	for i := range 6 {
		data := pattern(1<<20, byte(50+i))
		d := digest.OfBytes(data)
		if err := st.PutBytes(testutil.Context(t), d, data, store.PutHint{}); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, d)
	}
	e := newLocalEnvOver(t, st, grpcservers.Options{UploadIdleTimeout: time.Hour})
	big := pattern(4<<20, 60)
	startWrite(testutil.Context(t), t, e.bs, uploadName(digest.OfBytes(big)), big, 1<<20)
	missing, err := st.FindMissing(testutil.Context(t), stored)
	if err != nil || len(missing) != 0 {
		t.Fatalf("%d stored blobs evicted while an upload was open: %v", len(missing), err)
	}
}
