package upstream

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Breaker states, as BreakerState reports them.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half-open"
)

// breaker is a remote's circuit breaker. After `failures` consecutive
// failures it opens: calls fail fast with UNAVAILABLE for coolDown. Then one
// call is let through as a probe (half-open); its success closes the
// breaker, its failure opens it for another coolDown. Safe for concurrent
// use.
type breaker struct {
	name     string
	failures int
	coolDown time.Duration
	clock    Clock
	gauge    interface{ Set(float64) }

	mu       sync.Mutex
	state    string
	failed   int       // consecutive failures while closed
	openedAt time.Time // when it last opened
	probing  bool      // a half-open probe is in flight
}

func newBreaker(name string, o options, m *metrics) *breaker {
	b := &breaker{name: name, failures: o.breakerFailures, coolDown: o.breakerCoolDown, clock: o.clock, gauge: m.breaker, state: StateClosed}
	b.gauge.Set(0)
	return b
}

// State returns "closed", "open" or "half-open". An open breaker whose
// cool-down is over reports half-open: the next call is the probe.
func (b *breaker) State() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == StateOpen && b.clock.Now().Sub(b.openedAt) >= b.coolDown {
		return StateHalfOpen
	}
	return b.state
}

// allow reports whether a call may go to the remote. When it returns nil,
// the caller must pass the call's outcome to done.
func (b *breaker) allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures <= 0 {
		return nil
	}
	if b.state == StateOpen && b.clock.Now().Sub(b.openedAt) >= b.coolDown {
		b.set(StateHalfOpen)
	}
	switch {
	case b.state == StateOpen, b.state == StateHalfOpen && b.probing:
		return status.Errorf(codes.Unavailable, "upstream %s: circuit open after %d consecutive failures", b.name, b.failures)
	case b.state == StateHalfOpen:
		b.probing = true
	}
	return nil
}

// done records the outcome of a call that allow let through. NOT_FOUND and
// other answers about the request rather than the remote count as success;
// a caller giving up counts as nothing.
func (b *breaker) done(ctx context.Context, err error) {
	if b.failures <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	wasProbe := b.state == StateHalfOpen && b.probing
	if wasProbe {
		b.probing = false
	}
	switch {
	case err != nil && callerGone(ctx, err):
		return
	case !unhealthy(err):
		b.failed = 0
		b.set(StateClosed)
	case wasProbe:
		b.open()
	case b.state == StateClosed:
		if b.failed++; b.failed >= b.failures {
			b.open()
		}
	}
}

func (b *breaker) open() {
	b.failed = 0
	b.openedAt = b.clock.Now()
	b.set(StateOpen)
}

func (b *breaker) set(state string) {
	b.state = state
	b.gauge.Set(map[string]float64{StateClosed: 0, StateHalfOpen: 1, StateOpen: 2}[state])
}

// unhealthy reports whether err says something about the remote's health
// rather than about the request.
func unhealthy(err error) bool {
	switch status.Code(err) {
	case codes.OK, codes.NotFound, codes.InvalidArgument, codes.OutOfRange,
		codes.FailedPrecondition, codes.AlreadyExists:
		return false
	}
	return true
}
