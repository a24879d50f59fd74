package store

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type fallbackKey struct{}

// WithFallback marks ctx for a call to a tier that has another tier after
// it which can answer instead (the ordered fan-out sets it on every remote
// but the last). A remote client then makes a single attempt and no retry
// sleeps: a failing remote must not hold a request that the next tier can
// serve, and the breaker and later requests do the retrying. It changes no
// other behaviour; a CAS is free to ignore it.
func WithFallback(ctx context.Context) context.Context {
	return context.WithValue(ctx, fallbackKey{}, true)
}

// HasFallback reports whether ctx carries WithFallback.
func HasFallback(ctx context.Context) bool {
	v, _ := ctx.Value(fallbackKey{}).(bool)
	return v
}

// ErrStalled is the cause (context.Cause) with which a fan-out cancels a
// call to a tier that gave no answer within its failover delay. A remote
// client counts such a cancellation as the remote's failure (a stall), not
// as the caller giving up, so that a remote that keeps stalling trips its
// circuit breaker and is skipped.
var ErrStalled = status.Error(codes.DeadlineExceeded, "no answer within the failover delay")

// Stalled reports whether ctx was cancelled with ErrStalled.
func Stalled(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrStalled)
}
