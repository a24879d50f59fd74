package upstream

import (
	"context"
	"io"

	"github.com/castd/castd/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are one remote's handles on the castd_upstream_* collectors,
// which all remotes on one registerer share.
type metrics struct {
	requests *prometheus.CounterVec // method, code; curried by remote
	received prometheus.Counter
	sent     prometheus.Counter
	breaker  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, remote string) *metrics {
	requests := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "castd_upstream_requests_total",
		Help: "gRPC calls made to upstream remotes (each attempt), by remote, method and status code.",
	}, []string{"remote", "method", "code"}))
	received := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "castd_upstream_bytes_received_total",
		Help: "Blob bytes read from an upstream remote.",
	}, []string{"remote"}))
	sent := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "castd_upstream_bytes_sent_total",
		Help: "Blob bytes written to an upstream remote.",
	}, []string{"remote"}))
	breaker := promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "castd_upstream_breaker_state",
		Help: "Circuit breaker state of an upstream remote: 0 closed, 1 half-open, 2 open.",
	}, []string{"remote"}))
	return &metrics{
		requests: requests.MustCurryWith(prometheus.Labels{"remote": remote}),
		received: received.WithLabelValues(remote),
		sent:     sent.WithLabelValues(remote),
		breaker:  breaker.WithLabelValues(remote),
	}
}

func (m *metrics) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	return err
}

func (m *metrics) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
		return nil, err
	}
	return &countedStream{ClientStream: cs, single: !desc.ServerStreams, done: func(err error) {
		m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
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
