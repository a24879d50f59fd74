package grpcservers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/grpcservers"
)

// committed polls QueryWriteStatus until it reports want or the deadline
// passes, and returns the last answer. NOT_FOUND counts as not yet: a
// Send returns before the server has read the request.
func committed(t *testing.T, bs bspb.ByteStreamClient, name string, want int64) int64 {
	t.Helper()
	var got int64
	testutil.Poll(10*time.Second, func() bool {
		st, err := bs.QueryWriteStatus(testutil.Context(t), &bspb.QueryWriteStatusRequest{ResourceName: name})
		if status.Code(err) == codes.NotFound {
			return false // the server has not read the stream's first request yet
		}
		if err != nil {
			t.Fatalf("QueryWriteStatus: %v", err)
		}
		got = st.GetCommittedSize()
		return got == want
	})
	return got
}

func TestByteStreamResume(t *testing.T) {
	data := pattern(4<<20, 5)
	d := digest.OfBytes(data)
	half := int64(len(data) / 2)
	tests := []struct {
		name        string
		why         string
		breakStream func(t *testing.T, e *env, name string)
	}{
		{"half-closed without finish_write", "a client that stops early can resume", func(t *testing.T, e *env, name string) {
			_, err := writeChunks(testutil.Context(t), e.bs, name, data[:half], 0, 256<<10, false)
			wantCode(t, err, codes.InvalidArgument, "finish_write")
		}},
		{"stream cancelled", "a broken connection keeps what the store took", func(t *testing.T, e *env, name string) {
			ctx, cancel := context.WithCancel(testutil.Context(t))
			defer cancel()
			stream, err := e.bs.Write(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for off := int64(0); off < half; off += 256 << 10 {
				req := &bspb.WriteRequest{WriteOffset: off, Data: data[off : off+256<<10]}
				if off == 0 {
					req.ResourceName = name
				}
				if err := stream.Send(req); err != nil {
					t.Fatal(err)
				}
			}
			if got := committed(t, e.bs, name, half); got != half {
				t.Fatalf("committed %d before the break, want %d", got, half)
			}
			cancel()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			e := newEnv(t, grpcservers.Options{})
			name := uploadName(d)
			tc.breakStream(t, e, name)
			if got := committed(t, e.bs, name, half); got != half {
				t.Fatalf("QueryWriteStatus committed %d, want %d", got, half)
			}
			resp, err := writeChunks(testutil.Context(t), e.bs, name, data, half, 512<<10, true)
			if err != nil || resp.GetCommittedSize() != d.Size {
				t.Fatalf("resume: %v, committed %d", err, resp.GetCommittedSize())
			}
			got, err := readBS(testutil.Context(t), e.bs, &bspb.ReadRequest{ResourceName: digest.ReadResourceName("main", d)})
			if err != nil || string(got) != string(data) {
				t.Fatalf("read back %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestByteStreamResumeWrongOffset(t *testing.T) {
	// why: a resumed write must start exactly at committed_size.
	e := newEnv(t, grpcservers.Options{})
	data := pattern(1<<20, 6)
	name := uploadName(digest.OfBytes(data))
	_, _ = writeChunks(testutil.Context(t), e.bs, name, data[:1000], 0, 1000, false)
	_, err := writeChunks(testutil.Context(t), e.bs, name, data, 2000, 1000, true)
	wantCode(t, err, codes.InvalidArgument, "write_offset")
}

func TestByteStreamIdleUploadAborted(t *testing.T) {
	// why: an abandoned upload is dropped after UploadIdleTimeout and nothing is stored.
	e := newEnv(t, grpcservers.Options{UploadIdleTimeout: 20 * time.Millisecond})
	data := pattern(100000, 8)
	d := digest.OfBytes(data)
	name := uploadName(d)
	_, _ = writeChunks(testutil.Context(t), e.bs, name, data[:50000], 0, 10000, false)
	var err error
	if !testutil.Poll(10*time.Second, func() bool {
		_, err = e.bs.QueryWriteStatus(testutil.Context(t), &bspb.QueryWriteStatusRequest{ResourceName: name})
		return status.Code(err) == codes.NotFound
	}) {
		t.Fatalf("upload still known after the idle timeout: %v", err)
	}
	if e.has(t, d) {
		t.Fatal("an aborted upload was stored")
	}
	_, err = writeChunks(testutil.Context(t), e.bs, name, data, 50000, 10000, true)
	wantCode(t, err, codes.InvalidArgument, "write_offset")
}

func TestByteStreamConcurrentSameDigest(t *testing.T) {
	// why: many clients uploading one blob at once must all succeed and store it once.
	e := newEnv(t, grpcservers.Options{})
	data := pattern(3<<20, 11)
	d := digest.OfBytes(data)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			resp, err := writeChunks(testutil.Context(t), e.bs, uploadName(d), data, 0, 256<<10, true)
			if err == nil && resp.GetCommittedSize() != d.Size {
				err = status.Errorf(codes.Internal, "committed %d", resp.GetCommittedSize())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	got, err := readBS(testutil.Context(t), e.bs, &bspb.ReadRequest{ResourceName: digest.ReadResourceName("", d)})
	if err != nil || string(got) != string(data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}
