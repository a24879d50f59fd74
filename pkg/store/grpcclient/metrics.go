package grpcclient

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/castd/castd/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are one remote's handles on the castd_upstream_* collectors,
// which all remotes on one registerer share. The interceptors also write
// one debug line per upstream RPC (each attempt).
type metrics struct {
	requests *prometheus.CounterVec // method, code; curried by remote
	received prometheus.Counter
	sent     prometheus.Counter
	breaker  *prometheus.GaugeVec // role; curried by remote
	logger   *slog.Logger
	remote   string
}

func newMetrics(reg prometheus.Registerer, remote string, logger *slog.Logger) *metrics {
	requests := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "castd_upstream_requests_total",
		Help: "gRPC calls made to upstream remotes (each attempt), by remote, method and status code.",
	}, []string{"remote", "method", "code"}))
	received := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "castd_upstream_bytes_received_total",
		Help: "Blob bytes read from an upstream remote, as they came over the wire (compressed bytes for a compressed transfer).",
	}, []string{"remote"}))
	sent := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "castd_upstream_bytes_sent_total",
		Help: "Blob bytes written to an upstream remote, as they went over the wire (compressed bytes for a compressed transfer).",
	}, []string{"remote"}))
	breaker := promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "castd_upstream_breaker_state",
		Help: "Circuit breaker state of an upstream remote's role (cas, action-cache, asset): 0 closed, 1 half-open, 2 open.",
	}, []string{"remote", "role"}))
	return &metrics{
		requests: requests.MustCurryWith(prometheus.Labels{"remote": remote}),
		received: received.WithLabelValues(remote),
		sent:     sent.WithLabelValues(remote),
		breaker:  breaker.MustCurryWith(prometheus.Labels{"remote": remote}),
		logger:   logger,
		remote:   remote,
	}
}

// outcome counts one finished RPC (or attempt) and logs it at debug.
func (m *metrics) outcome(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	m.requests.WithLabelValues(method, code.String()).Inc()
	if m.logger.Enabled(ctx, slog.LevelDebug) {
		m.logger.DebugContext(ctx, "upstream rpc", "remote", m.remote, "method", method, "code", code.String(), "duration", time.Since(start))
	}
}

func (m *metrics) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	m.outcome(ctx, method, start, err)
	return err
}

func (m *metrics) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	start := time.Now()
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		m.outcome(ctx, method, start, err)
		return nil, err
	}
	return &countedStream{ClientStream: cs, single: !desc.ServerStreams, done: func(err error) {
		m.outcome(ctx, method, start, err)
	}}, nil
}

// countedStream reports the stream's outcome once: when RecvMsg first fails
// (io.EOF counts as OK), or on the first RecvMsg of a call with a single
// response.
type countedStream struct {
	grpc.ClientStream
	done     func(error)
	single   bool
	reported bool
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if (err != nil || s.single) && !s.reported {
		s.reported = true
		if err == io.EOF {
			s.done(nil)
		} else {
			s.done(err)
		}
	}
	return err
}
