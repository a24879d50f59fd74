package grpcservers

import (
	"context"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// drainingHealth is grpc-go's health service with one change: a Watch ends
// right after it has told its client NOT_SERVING. castd's services turn
// NOT_SERVING only when a drain begins (health.Server.Shutdown), and a Watch
// never finishes by itself, so without this every client that watches
// health (gRPC client-side health checking does) would hold a graceful stop
// open until the drain time runs out. Check and List are the library's.
type drainingHealth struct{ *health.Server }

func (h drainingHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	return h.Server.Watch(req, &endAfterNotServing{Health_WatchServer: stream, ctx: ctx, cancel: cancel})
}

// endAfterNotServing ends the Watch it serves (through its context) once a
// NOT_SERVING has gone out.
type endAfterNotServing struct {
	healthpb.Health_WatchServer
	ctx    context.Context
	cancel context.CancelFunc
}

func (w *endAfterNotServing) Context() context.Context { return w.ctx }

func (w *endAfterNotServing) Send(r *healthpb.HealthCheckResponse) error {
	err := w.Health_WatchServer.Send(r)
	if r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
		w.cancel()
	}
	return err
}
