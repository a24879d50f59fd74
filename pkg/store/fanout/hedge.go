package fanout

import (
	"context"
	"sync/atomic"
	"time"
)

// Hedged CAS reads. For content addressed by its hash any verified copy is
// as good as another, so a CAS read need not wait for a slow tier before
// asking the next one (the action cache, whose order is semantic, is never
// hedged). Each tier's answer time (successful and NOT_FOUND answers) is
// tracked as an average; the next tier is asked too, without cutting off
// the first:
//
//   - at once, when the tier is markedly slower than the next one
//     (hedgeRatio times, and by hedgeMinGap): a far remote in front of a
//     near one costs its round trip on every cold read otherwise;
//   - after hedgeFactor times the tier's usual time (at least hedgeFloor),
//     when it is slow now: a stall costs a few round trips, not the whole
//     failover delay;
//   - for a tier that never answered, after 4× the next tier's usual time,
//     or a quarter of the failover delay while neither ever answered.
//
// A call cut off as stalled counts as an answer that took the failover
// delay, so a tier that stalls is asked together with the next from then
// on, until its answers bring its average down again.
//
// The first tier to serve wins; when both have answered, pull order
// decides. A first tier that has not answered when the read is decided
// goes on in the background within its failover delay, so that its answer
// or its stall still reaches its latency average and its breaker.
const (
	latencyWeight = 8 // an answer moves the average by 1/latencyWeight of the difference
	hedgeRatio    = 4
	hedgeMinGap   = 5 * time.Millisecond
	hedgeFactor   = 4
	hedgeFloor    = 10 * time.Millisecond
)

// latency is the moving average of a tier's answer times; zero until the
// first answer. Safe for concurrent use.
type latency struct{ ns atomic.Int64 }

func (l *latency) observe(d time.Duration) {
	for {
		old := l.ns.Load()
		avg := int64(max(d, 1))
		if old != 0 {
			avg = max(old+(avg-old)/latencyWeight, 1)
		}
		if l.ns.CompareAndSwap(old, avg) {
			return
		}
	}
}

func (l *latency) get() time.Duration { return time.Duration(l.ns.Load()) }

// hedgeAfter is how long a CAS read waits for the i-th tier before asking
// the next one too; false when it does not hedge (the last tier, or a
// fan-out without latencies: the action cache).
func (f failover) hedgeAfter(i int) (time.Duration, bool) {
	if f.lat == nil || i >= f.tiers-1 {
		return 0, false
	}
	return hedgeDelay(f.lat[i].get(), f.lat[i+1].get(), f.delay), true
}

// hedgeDelay decides the wait for a tier of usual answer time this (zero:
// never answered) in front of one of usual time next (zero: unknown).
func hedgeDelay(this, next, failoverDelay time.Duration) time.Duration {
	switch {
	case this == 0 && next == 0:
		return failoverDelay / 4
	case this == 0:
		this = next // no answer yet: as fast as the next would be usual
	case next > 0 && this >= hedgeRatio*next && this-next >= hedgeMinGap:
		return 0
	}
	return min(max(hedgeFactor*this, hedgeFloor), failoverDelay)
}

// raced is the outcome of race: each call's result and whether it had
// answered when the race was decided. release must be called once the
// results are no longer used (a stream a call opened lives until then).
type raced[T any] struct {
	first, second         T
	firstDone, secondDone bool
	cancelFirst           context.CancelFunc // nil once the first call is left to finish on its own
	cancelSecond          context.CancelFunc
}

func (r raced[T]) release() {
	if r.cancelFirst != nil {
		r.cancelFirst()
	}
	r.cancelSecond()
}

// race calls first (a tier) and, when it has not answered within wait,
// second (what comes after it) too. It returns once either answered with
// a result that is enough, or both answered. A second call still running
// then is cancelled; a first one is left to finish in the background (its
// failover delay bounds it), so that its outcome still reaches its
// latency average and breaker. drop, if not nil, releases the result of a
// call that finishes after the race was decided; hedged, if not nil, is
// called when second is started.
func race[T any](ctx context.Context, wait time.Duration, first, second func(context.Context) T, enough func(T) bool, drop func(T), hedged func()) raced[T] {
	fctx, abandon, cancelFirst := detachable(ctx)
	firstc := make(chan T, 1)
	go func() { firstc <- first(fctx) }()
	sctx, cancelSecond := context.WithCancel(ctx)
	r := raced[T]{cancelFirst: cancelFirst, cancelSecond: cancelSecond}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r.first = <-firstc:
		r.firstDone = true
		return r
	case <-timer.C:
	}
	if hedged != nil {
		hedged()
	}
	secondc := make(chan T, 1)
	go func() { secondc <- second(sctx) }()
	for !r.firstDone || !r.secondDone {
		select {
		case r.first = <-firstc:
			r.firstDone = true
		case r.second = <-secondc:
			r.secondDone = true
		}
		if r.firstDone && enough(r.first) || r.secondDone && enough(r.second) {
			break
		}
	}
	if drop == nil {
		drop = func(T) {}
	}
	if !r.firstDone {
		abandon()
		r.cancelFirst = nil
		go func() { drop(<-firstc); cancelFirst() }()
	}
	if !r.secondDone {
		cancelSecond()
		go func() { drop(<-secondc) }()
	}
	return r
}

// detachable returns a context cancelled with ctx until abandon is
// called; after that it lives on without ctx (keeping its values) until
// cancel, so that a call the caller no longer waits for can finish and be
// counted.
func detachable(ctx context.Context) (dctx context.Context, abandon, cancel func()) {
	dctx, cancelCtx := context.WithCancel(context.WithoutCancel(ctx))
	var abandoned atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		if !abandoned.Load() {
			cancelCtx()
		}
	})
	return dctx, func() { abandoned.Store(true) }, func() { stop(); cancelCtx() }
}

// hedged returns the function that counts a hedge of the i-th tier.
func (c *fanoutCAS) hedged(i int) func() {
	return c.fmetrics.hedged.WithLabelValues(c.fmetrics.instance, c.remotes[i].Name).Inc
}
