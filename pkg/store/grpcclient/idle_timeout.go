package grpcclient

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/castd/castd/internal/clock"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// idleTimeout cuts a stream when one SendMsg or RecvMsg waits longer than
// timeout: the remote has stopped making progress. There is no absolute
// deadline, so a large transfer that keeps moving is never cut, and time
// the caller spends between messages does not count.
type idleTimeout struct {
	timeout time.Duration
	clock   clock.Clock
}

func (t idleTimeout) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	sctx, cancel := context.WithCancel(ctx)
	s := &idleStream{idleTimeout: t, cancel: cancel}
	cs, err := t.guard(s, func() (grpc.ClientStream, error) { return streamer(sctx, desc, cc, method, opts...) })
	if err != nil {
		cancel()
		return nil, s.explain(err)
	}
	s.ClientStream = cs
	return s, nil
}

// idleStream is a ClientStream whose every blocking step is guarded by the
// idle timer. The stream's context is cancelled when the timer fires.
type idleStream struct {
	grpc.ClientStream
	idleTimeout
	cancel context.CancelFunc
	fired  atomic.Bool
}

func (t idleTimeout) guard(s *idleStream, step func() (grpc.ClientStream, error)) (grpc.ClientStream, error) {
	timer := t.clock.AfterFunc(t.timeout, func() {
		s.fired.Store(true)
		s.cancel()
	})
	defer timer.Stop()
	return step()
}

func (s *idleStream) SendMsg(m any) error {
	_, err := s.guard(s, func() (grpc.ClientStream, error) { return nil, s.ClientStream.SendMsg(m) })
	return s.explain(err)
}

func (s *idleStream) RecvMsg(m any) error {
	_, err := s.guard(s, func() (grpc.ClientStream, error) { return nil, s.ClientStream.RecvMsg(m) })
	if err != nil {
		s.cancel() // the stream is over; release its context
	}
	return s.explain(err)
}

func (s *idleStream) CloseSend() error { return s.explain(s.ClientStream.CloseSend()) }

// explain turns the cancellation caused by the idle timer into
// DEADLINE_EXCEEDED saying why.
func (s *idleStream) explain(err error) error {
	if err != nil && s.fired.Load() {
		return status.Errorf(codes.DeadlineExceeded, "stream made no progress for %v", s.timeout)
	}
	return err
}
