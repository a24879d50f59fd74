package grpcclient

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/store"
)

// Breaker states, as BreakerState reports them.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half-open"
)

// Role is one service of a remote with its own health and circuit
// breaker: a remote that refuses action-cache writes still serves blobs.
type Role string

// The roles of a remote.
const (
	RoleCAS         Role = "cas"
	RoleActionCache Role = "action-cache"
	RoleAsset       Role = "asset"
)

// Roles lists every Role, in the order status reports them.
var Roles = []Role{RoleCAS, RoleActionCache, RoleAsset}

// breaker is the circuit breaker and health record of one role of a
// remote. After `failures` consecutive failures it opens: calls fail fast
// with UNAVAILABLE for coolDown. Then one call is let through as a probe
// (half-open); its success closes the breaker, its failure opens it for
// another coolDown. Every state change is logged at warn, rate-limited.
// Safe for concurrent use.
type breaker struct {
	name, url string
	role      Role
	failures  int
	coolDown  time.Duration
	clock     clock.Clock
	gauge     interface{ Set(float64) }
	log       *stateLog

	mu       sync.Mutex
	state    string
	failed   int       // consecutive failures while closed
	openedAt time.Time // when it last opened
	probing  bool      // a half-open probe is in flight
	health   health
}

func newBreaker(name, url string, role Role, o options, m *metrics) *breaker {
	b := &breaker{
		name: name, url: url, role: role, failures: o.breakerFailures, coolDown: o.breakerCoolDown,
		clock: o.clock, gauge: m.breaker.WithLabelValues(string(role)), state: StateClosed,
		log: newStateLog(o.logger, o.clock, o.logEvery, name, url, role),
	}
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
		b.set(StateHalfOpen, codes.OK)
	}
	switch {
	case b.state == StateOpen, b.state == StateHalfOpen && b.probing:
		return grpcerr.Labelf(label(b.name), codes.Unavailable, "%s circuit open after %d consecutive failures", b.role, b.failures)
	case b.state == StateHalfOpen:
		b.probing = true
	}
	return nil
}

// done records the outcome of a call that allow let through. NOT_FOUND and
// other answers about the request rather than the remote count as success;
// a caller giving up counts as nothing, but a call the fan-out cut off for
// stalling (store.ErrStalled) counts as a failure.
func (b *breaker) done(ctx context.Context, err error) {
	if err != nil && cancelledByCaller(ctx, err) {
		return
	}
	if err != nil && store.Stalled(ctx) {
		err = wrap(b.name, store.ErrStalled) // not the CANCELED the cut-off produced
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.record(err)
	if b.failures <= 0 {
		return
	}
	wasProbe := b.state == StateHalfOpen && b.probing
	if wasProbe {
		b.probing = false
	}
	switch {
	case !unhealthy(err):
		b.failed = 0
		b.set(StateClosed, codes.OK)
	case wasProbe:
		b.open(status.Code(err))
	case b.state == StateClosed:
		if b.failed++; b.failed >= b.failures {
			b.open(status.Code(err))
		}
	}
}

func (b *breaker) open(code codes.Code) {
	b.failed = 0
	b.openedAt = b.clock.Now()
	b.set(StateOpen, code)
}

// set changes the state and logs the change; code is the failure that
// caused it (OK for none).
func (b *breaker) set(state string, code codes.Code) {
	if b.state != state {
		b.log.change("breaker "+state, code, "")
	}
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

// doneWith is done that passes err through, for one-line call sites.
func (b *breaker) doneWith(ctx context.Context, err error) error {
	b.done(ctx, err)
	return err
}

// Health states of a role, as RoleHealth reports them.
const (
	HealthUnknown = "unknown" // no call yet
	HealthOK      = "ok"      // the last call was answered (a miss counts)
	HealthDown    = "down"    // the last call failed with a transient code, or stalled
	HealthRefused = "refused" // the last call was refused permanently (see Permanent)
)

// health is what the last call of a role said about the remote.
type health struct {
	state   string
	lastErr string
	code    codes.Code
	since   time.Time
}

// record notes err as the role's latest outcome and logs a change of
// health; the caller holds mu.
func (b *breaker) record(err error) {
	state := HealthOK
	switch code := status.Code(err); {
	case !unhealthy(err):
	case Permanent(code):
		state = HealthRefused
	default:
		state = HealthDown
	}
	code, msg := codes.OK, ""
	if state != HealthOK {
		code, msg = status.Code(err), err.Error()
		b.health.lastErr, b.health.code = msg, code
	}
	if state == b.health.state {
		return
	}
	if state != HealthOK || b.health.state != "" {
		b.log.change(state, code, msg)
	}
	b.health.state, b.health.since = state, b.clock.Now()
}

// RoleHealth is the state of one role of a remote, for status reports.
type RoleHealth struct {
	Role Role
	// Health is HealthUnknown, HealthOK, HealthDown or HealthRefused; a
	// role whose breaker is open is reported down.
	Health string
	// Breaker is StateClosed, StateOpen or StateHalfOpen.
	Breaker string
	// LastError is the last failure's message (empty before any), Code
	// its gRPC code.
	LastError string
	Code      codes.Code
	// Since is when Health last changed.
	Since time.Time
}

func (b *breaker) roleHealth() RoleHealth {
	st := b.State()
	b.mu.Lock()
	defer b.mu.Unlock()
	h := RoleHealth{Role: b.role, Health: b.health.state, Breaker: st, LastError: b.health.lastErr, Code: b.health.code, Since: b.health.since}
	switch {
	case st == StateOpen:
		h.Health = HealthDown
	case h.Health == "":
		h.Health = HealthUnknown
	}
	return h
}

// stateLog writes a remote role's state changes at warn, at most one per
// kind of change per interval; the changes it held back are counted in
// the next line of that kind. The caller serialises calls (the breaker's
// mutex).
type stateLog struct {
	logger    *slog.Logger
	clock     clock.Clock
	every     time.Duration
	name, url string
	role      Role
	last      map[string]time.Time
	held      map[string]int
}

func newStateLog(l *slog.Logger, c clock.Clock, every time.Duration, name, url string, role Role) *stateLog {
	return &stateLog{logger: l, clock: c, every: every, name: name, url: url, role: role, last: map[string]time.Time{}, held: map[string]int{}}
}

// change logs that the role is now in state, because of a failure with
// code (OK: none) and message msg.
func (s *stateLog) change(state string, code codes.Code, msg string) {
	now := s.clock.Now()
	if last, ok := s.last[state]; ok && now.Sub(last) < s.every {
		s.held[state]++
		return
	}
	s.last[state] = now
	attrs := []any{"remote", s.name, "url", s.url, "role", string(s.role), "state", state}
	if code != codes.OK {
		attrs = append(attrs, "code", code.String())
	}
	if msg != "" {
		attrs = append(attrs, "err", msg)
	}
	if n := s.held[state]; n > 0 {
		attrs = append(attrs, "suppressed", n)
		s.held[state] = 0
	}
	s.logger.Warn("upstream: remote state changed", attrs...)
}
