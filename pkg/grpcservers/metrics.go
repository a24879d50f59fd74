package grpcservers

import (
	"context"
	"time"

	"github.com/castd/castd/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics holds the collectors every handler shares. Safe for concurrent use.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	// readBuffered is the memory ByteStream Read buffers hold (see
	// readBuffers).
	readBuffered prometheus.Gauge
	// readWaiting counts reads waiting for room under the limit.
	readWaiting prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		requests: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_grpc_requests_total",
			Help: "gRPC calls handled, by full method name and status code.",
		}, []string{"method", "code"})),
		duration: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "castd_grpc_request_duration_seconds",
			Help:    "Time from the start of a gRPC call until its handler returned.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 14),
		}, []string{"method"})),
		received: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_bytes_received_total",
			Help: "Blob payload bytes received from clients, by service, as they came over the wire (compressed bytes for a compressed transfer).",
		}, []string{"service"})),
		sent: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_bytes_sent_total",
			Help: "Blob payload bytes sent to clients, by service, as they went over the wire (compressed bytes for a compressed transfer).",
		}, []string{"service"})),
		readBuffered: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "castd_bytestream_read_buffer_bytes",
			Help: "Memory held by ByteStream Read buffers not yet written to a client's connection; at most the configured read buffer limit.",
		})),
		readWaiting: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "castd_bytestream_read_buffer_waiters",
			Help: "ByteStream Reads waiting for a buffer because the read buffer limit is reached.",
		})),
	}
}

func (m *metrics) observe(method string, start time.Time, err error) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.observe(info.FullMethod, start, err)
	return resp, err
}

func (m *metrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	m.observe(info.FullMethod, start, err)
	return err
}
