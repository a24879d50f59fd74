package grpcclient

import (
	"context"
	"time"
)

// Clock is the time source of the breaker, the token reload and the idle
// timeout. Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not happened yet and reports
	// whether it did so.
	Stop() bool
}

type systemClock struct{}

// SystemClock returns the wall clock.
func SystemClock() Clock { return systemClock{} }

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// clockSleep returns a sleeper that waits on c, or until ctx is done.
func clockSleep(c Clock) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		done := make(chan struct{})
		t := c.AfterFunc(d, func() { close(done) })
		defer t.Stop()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
