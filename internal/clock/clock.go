// Package clock is castd's one time source: every component whose
// behaviour depends on time (breakers, token reloads, idle timeouts, retry
// backoff, existence caches, registration expiry, write-back retries,
// scrub pacing) takes a Clock, so that tests can drive time explicitly
// with a Fake instead of sleeping.
//
// Options structs hold a `Clock clock.Clock` field whose zero value (nil)
// means the wall clock; components resolve it with OrReal once.
//
// It must not hold anything but time: no scheduling policy, no metrics.
package clock

import (
	"context"
	"time"
)

// Clock tells the time and waits. Implementations must be safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
	// Sleep waits for d, or until ctx is done, and then returns ctx's
	// error (nil when the whole wait passed).
	Sleep(ctx context.Context, d time.Duration) error
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not happened yet and reports
	// whether it did so.
	Stop() bool
}

// Real returns the wall clock.
func Real() Clock { return wall{} }

// OrReal returns c, or the wall clock when c is nil: the meaning of a zero
// Clock field in an options struct.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real()
	}
	return c
}

type wall struct{}

func (wall) Now() time.Time { return time.Now() }

func (wall) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

func (wall) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// After returns a channel that c closes once d has passed, and the timer
// to Stop when the wait is abandoned (so that nothing is left armed).
func After(c Clock, d time.Duration) (<-chan struct{}, Timer) {
	due := make(chan struct{})
	return due, c.AfterFunc(d, func() { close(due) })
}
