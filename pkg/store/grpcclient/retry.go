package grpcclient

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// maxBackoff caps one backoff delay however many retries are configured.
const maxBackoff = time.Minute

// retrier decides whether a failed call is tried again and waits the
// backoff: exponential from delay, with ±50% jitter so that many clients of
// one recovering remote do not retry in lockstep. It also re-reads the access
// token once when a call is answered UNAUTHENTICATED. Safe for concurrent
// use; per-call state lives in retryState.
type retrier struct {
	limit   int
	delay   time.Duration
	timeout time.Duration // per attempt of a unary call
	sleep   func(context.Context, time.Duration) error
	reauth  func() // nil when no token is configured
}

// retryState is the progress of one logical call.
type retryState struct {
	attempt  int
	reauthed bool
}

// retriable reports whether code is worth another attempt: the transient
// codes (see Permanent). A unary call that ran out of its per-attempt
// timeout is retried; a stream cut by the idle timeout is not (the remote
// stalled, and the next remote should be asked).
func retriable(code codes.Code, unary bool) bool {
	if code == codes.DeadlineExceeded {
		return unary
	}
	return transient(code)
}

// again reports whether the call that failed with err should be made again,
// after waiting the backoff. It returns false when the caller's ctx is done,
// and for a call with a fallback tier (store.WithFallback): that one gets a
// single attempt, since a client must not wait on a remote it does not need
// (only the token re-read, which costs no sleep, is still done).
func (r *retrier) again(ctx context.Context, st *retryState, err error, unary bool) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	code := status.Code(err)
	if code == codes.Unauthenticated && r.reauth != nil && !st.reauthed {
		st.reauthed = true
		r.reauth()
		return true
	}
	if !retriable(code, unary) || st.attempt >= r.limit || store.HasFallback(ctx) {
		return false
	}
	d := r.backoff(st.attempt)
	st.attempt++
	return r.sleep(ctx, d) == nil
}

func (r *retrier) backoff(attempt int) time.Duration {
	d := r.delay << min(attempt, 20)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	return d/2 + rand.N(d)
}

// unaryInterceptor retries unary calls and bounds each attempt by the
// request timeout.
func (r *retrier) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var st retryState
	for {
		actx, cancel := context.WithTimeout(ctx, r.timeout)
		err := invoker(actx, method, req, reply, cc, opts...)
		cancel()
		if !r.again(ctx, &st, err, true) {
			return err
		}
	}
}
