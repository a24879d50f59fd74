package fanout

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/store"
)

// failover shapes the calls a read makes to the remotes in pull order so
// that a failing or stalled remote does not hold a request that a later
// tier can answer:
//
//   - Every tier but the last is called with store.WithFallback: a single
//     attempt, no retry sleeps. Retries of a remote the request does not
//     need are left to the breaker and to later requests; the last tier
//     keeps the configured retries.
//   - Every tier but the last must answer within delay (for a Get: open
//     its stream and deliver the first bytes). When it has not, the call
//     is cancelled with store.ErrStalled, which the remote client counts
//     toward its breaker, so that after a few stalls the remote is skipped
//     until its cool-down, and the read goes on to the next tier.
//
// A tier that misses its delay is skipped like one that cannot answer
// (DESIGN §3.3). Action-cache lookups, whose order is semantic, hold one
// remote call at a time, so a stall costs them at most delay. CAS reads,
// where any verified copy will do, also hedge (see hedge.go): the next
// tier is asked before the delay runs out, and the first copy found wins;
// lat, when set, holds each tier's answer-time average, measured on clock.
// A stream that stalls after its first bytes is handled by
// resumingStream.
type failover struct {
	delay time.Duration
	tiers int
	lat   []*latency
	clock clock.Clock
}

// newCASFailover is the failover of a CAS fan-out over tiers remotes, with
// latency tracking for hedging.
func newCASFailover(delay time.Duration, tiers int, clock clock.Clock) failover {
	f := failover{delay: delay, tiers: tiers, clock: clock}
	for range tiers {
		f.lat = append(f.lat, &latency{})
	}
	return f
}

// Call is one call to a tier under failover (see failover and Walk). Not
// safe for concurrent use.
type Call struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer // nil for the last tier
	delay  time.Duration
	lat    *latency // nil: not tracked
	clock  clock.Clock
	start  time.Time
	also   func() // called by release, if set
	done   bool   // Done was called
}

// begin prepares the call to the i-th tier (0-based). The caller must call
// answered once the tier has answered (for a Get: once Get returned) and
// release once it no longer uses ctx (for a Get: when the stream is
// done).
func (f failover) begin(ctx context.Context, i int) *Call {
	c := &Call{delay: f.delay}
	if f.lat != nil {
		c.lat, c.clock = f.lat[i], f.clock
		c.start = f.clock.Now()
	}
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	if i < f.tiers-1 {
		c.ctx = store.WithFallback(c.ctx)
		c.timer = time.AfterFunc(f.delay, func() { c.cancel(store.ErrStalled) })
	}
	return c
}

// Context is the context for the tier's call: for every tier but the
// last it carries store.WithFallback and is cancelled with
// store.ErrStalled when the failover delay runs out.
func (c *Call) Context() context.Context { return c.ctx }

// Done takes the tier's answer err: it stops the stall timer, so that
// what the caller then does with the answer (a completeness check) is not
// cut off, and returns err, or DEADLINE_EXCEEDED saying so when the tier
// was cut off as stalled. Walk calls it when the ask did not; once called,
// it returns its argument unchanged.
func (c *Call) Done(err error) error {
	if c.done {
		return err
	}
	c.done = true
	return c.outcome(c.answered(), err)
}

// answered stops the stall timer and reports whether the tier answered in
// time; false means its context was cancelled as stalled.
func (c *Call) answered() bool {
	return c.timer == nil || c.timer.Stop()
}

// release ends the call's context.
func (c *Call) release() {
	c.cancel(nil)
	if c.also != nil {
		c.also()
	}
}

// stalled is the error of a tier that gave no answer within the delay.
func (c *Call) stalled() error {
	return status.Errorf(codes.DeadlineExceeded, "no answer within the failover delay of %v; the next tier was asked", c.delay)
}

// outcome is err, or the stall error when the tier did not answer in time
// and err is the cancellation that caused.
func (c *Call) outcome(inTime bool, err error) error {
	if err != nil && !inTime {
		return c.stalled()
	}
	return err
}

// observe adds the call's answer time to the tier's average when err is
// an answer (nil or NOT_FOUND), or the time it was given when it was cut
// off as stalled (it took at least that long); other failures say nothing
// about how fast the tier answers, nor does a digest function the tier
// does not take (store.IsUnsupportedFunction), which it answers without a
// call.
func (c *Call) observe(inTime bool, err error) {
	if c.lat == nil || inTime && err != nil && (status.Code(err) != codes.NotFound || store.IsUnsupportedFunction(err)) {
		return
	}
	c.lat.observe(c.clock.Now().Sub(c.start))
}
