package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/castd/castd/internal/clock"
)

// EventuallyTimeout is how long Eventually waits: long, because the CI
// machine is slow and loaded and a passing test never waits it out.
const EventuallyTimeout = 20 * time.Second

// pollEvery is how often Poll checks its condition.
const pollEvery = 2 * time.Millisecond

// Context returns a context that ends when t does, or after a minute: a
// bound on each RPC of a test so that a hang fails instead of stalling
// the run.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Poll checks cond every few milliseconds until it holds or timeout
// passes, and reports whether it held. For asynchronous work that gives
// no signal to wait on.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		<-tick.C
	}
	return true
}

// Eventually polls cond until it holds, failing t with what after
// EventuallyTimeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, EventuallyTimeout, what, cond)
}

// EventuallyWithin is Eventually with its own timeout.
func EventuallyWithin(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// WaitArmed waits until c has a pending timer armed after timer number
// after (0-based, in arming order; -1 for any) and returns its number,
// failing t after EventuallyTimeout. It wakes on the arming, not by
// polling.
func WaitArmed(t testing.TB, c *clock.Fake, after int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), EventuallyTimeout)
	defer cancel()
	i, err := c.WaitArmed(ctx, after)
	if err != nil {
		t.Fatalf("no timer armed after #%d: %v", after, err)
	}
	return i
}
