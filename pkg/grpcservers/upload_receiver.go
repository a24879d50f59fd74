package grpcservers

import (
	"time"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// receiver reads a Write stream in a goroutine of its own so that the
// handler can give up on a client that stops sending: Recv itself blocks
// until the client sends or goes away, however long that takes. It holds
// at most one request the handler has not taken.
type receiver struct {
	reqs    chan recvResult
	quit    chan struct{}
	timeout time.Duration
	timer   *time.Timer
	idleErr error
}

type recvResult struct {
	req *bspb.WriteRequest
	err error
}

// receiver starts reading stream. The caller must call stop before the
// handler returns; the goroutine ends when the stream does.
func (s *byteStreamServer) receiver(stream bspb.ByteStream_WriteServer) *receiver {
	r := &receiver{reqs: make(chan recvResult), quit: make(chan struct{}), timeout: s.uploads.timeout,
		idleErr: status.Errorf(codes.DeadlineExceeded, "bytestream: no write request for %v; the upload was dropped", s.uploads.timeout)}
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case r.reqs <- recvResult{req, err}:
			case <-r.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// next returns the stream's next request, its error (io.EOF once the
// client half-closed), or idleErr when none came within the idle timeout.
func (r *receiver) next() (*bspb.WriteRequest, error) {
	if r.timer == nil {
		r.timer = time.NewTimer(r.timeout)
	} else {
		r.timer.Reset(r.timeout)
	}
	select {
	case res := <-r.reqs:
		return res.req, res.err
	case <-r.timer.C:
		return nil, r.idleErr
	}
}

// idle reports whether err is next's idle timeout.
func (r *receiver) idle(err error) bool { return err == r.idleErr }

// stop releases the goroutine once the stream ends.
func (r *receiver) stop() {
	close(r.quit)
	if r.timer != nil {
		r.timer.Stop()
	}
}
