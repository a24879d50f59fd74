package grpcclient_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/grpcclient"
)

const pacedChunk = 256 << 10

// pacedByteStream serves one blob through ByteStream Read, one chunk each
// time the test sends on gate. When failFirstAt > 0 the first stream breaks
// with UNAVAILABLE after that many chunks. It records read offsets.
type pacedByteStream struct {
	bspb.UnimplementedByteStreamServer
	data        []byte
	gate        chan struct{}
	failFirstAt int
	offsets     chan int64
}

func (s *pacedByteStream) Read(req *bspb.ReadRequest, stream bspb.ByteStream_ReadServer) error {
	s.offsets <- req.GetReadOffset()
	first := len(s.offsets) == 1 && req.GetReadOffset() == 0
	for i, off := 0, req.GetReadOffset(); off < int64(len(s.data)); i++ {
		if first && s.failFirstAt > 0 && i == s.failFirstAt {
			return status.Error(codes.Unavailable, "injected break")
		}
		select {
		case <-s.gate:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
		end := min(off+pacedChunk, int64(len(s.data)))
		if err := stream.Send(&bspb.ReadResponse{Data: s.data[off:end]}); err != nil {
			return err
		}
		off = end
	}
	return nil
}

func startPaced(t *testing.T, s *pacedByteStream) string {
	t.Helper()
	return testutil.ServeGRPC(t, func(srv *grpc.Server) { bspb.RegisterByteStreamServer(srv, s) })
}

func TestIdleTimeout(t *testing.T) {
	const idle = 10 * time.Second
	blob, d := randomBlob(3, 8*pacedChunk)
	for _, tc := range []struct {
		name string
		why  string
		// sent is how many chunks the server sends before it stalls (8 = all).
		sent     int
		wantCode codes.Code
	}{
		{"slow but progressing", "a transfer that keeps moving is never cut, however long it takes in total", 8, codes.OK},
		{"stalled mid-stream", "a stream with no progress for the idle timeout is cut, not retried", 3, codes.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			s := &pacedByteStream{data: blob, gate: make(chan struct{}, 1), offsets: make(chan int64, 10)}
			clock := newFakeClock()
			r := dial(t, grpcclient.Config{URL: "grpc://" + startPaced(t, s), IdleTimeout: idle, RetryLimit: 3}, grpcclient.WithClock(clock))
			got, err := pacedRead(t, r, d, s.gate, clock, tc.sent, 8, 9*idle/10)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("read: %v; want %v", err, tc.wantCode)
			}
			if tc.wantCode == codes.OK && !bytes.Equal(got, blob) {
				t.Fatalf("read %d bytes that differ from the blob", len(got))
			}
			if len(s.offsets) != 1 {
				t.Errorf("server saw %d reads; want 1", len(s.offsets))
			}
		})
	}
}

// pacedRead opens d with the first chunk let through, then reads the rest
// in the background. For each further chunk up to sent it waits until the
// client is blocked on the stream, moves the clock by step and lets the
// chunk go. If the server then stalls, it moves the clock by step twice
// while the client waits. The clock passes the idle timeout in total either
// way, but within one wait only when the server stalls.
func pacedRead(t *testing.T, r *grpcclient.Remote, d digest.Digest, gate chan<- struct{}, clock *clock.Fake, sent, total int, step time.Duration) ([]byte, error) {
	t.Helper()
	gate <- struct{}{}
	rc, err := r.CAS().Get(t.Context(), d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	// Count the timers before the reader starts: its first Recv arms the
	// next one, which the loop below must not skip.
	armed := clock.Timers() - 1
	go func() {
		b, err := io.ReadAll(rc)
		done <- result{b, err}
	}()
	for range sent - 1 {
		armed = testutil.WaitArmed(t, clock, armed)
		clock.Advance(step)
		gate <- struct{}{}
	}
	if sent < total {
		testutil.WaitArmed(t, clock, armed)
		clock.Advance(step)
		clock.Advance(step)
	}
	res := <-done
	return res.b, res.err
}

func TestStreamResumesAfterBreak(t *testing.T) {
	t.Log("a stream that breaks with UNAVAILABLE resumes at the next byte, and the whole blob is still verified")
	blob, d := randomBlob(4, 6*pacedChunk+5)
	s := &pacedByteStream{data: blob, gate: make(chan struct{}, 100), failFirstAt: 2, offsets: make(chan int64, 10)}
	for range 100 {
		s.gate <- struct{}{}
	}
	r := dial(t, grpcclient.Config{URL: "grpc://" + startPaced(t, s), RetryLimit: 1})
	got, err := readAll(r.CAS(), d, 0)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("read = %d bytes, %v; want the blob", len(got), err)
	}
	close(s.offsets)
	var offsets []int64
	for o := range s.offsets {
		offsets = append(offsets, o)
	}
	if len(offsets) != 2 || offsets[1] != 2*pacedChunk {
		t.Errorf("server saw read offsets %v; want [0 %d]", offsets, 2*pacedChunk)
	}
}
