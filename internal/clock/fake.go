package clock

import (
	"context"
	"sync"
	"time"
)

// Fake is a Clock for tests that moves only when the test moves it.
// Advance runs the AfterFunc calls that came due synchronously, in the
// caller's goroutine and in the order they were armed. Sleep never waits:
// it records the duration, runs the OnSleep hook and returns ctx's error,
// so retry backoff and pacing cost no real time. The zero value starts at
// the zero time; all methods are safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	sleeps  []time.Duration
	onSleep func(time.Duration)
	armed   chan struct{} // closed and replaced whenever a timer is armed
}

type fakeTimer struct {
	c    *Fake
	at   time.Time
	f    func()
	done bool
}

// NewFake returns a Fake that reads start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer that Advance fires once d has passed.
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	if c.armed != nil {
		close(c.armed)
		c.armed = nil
	}
	return t
}

// Stop disarms the timer; it reports whether it was still pending.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Sleep records d, runs the OnSleep hook with it and returns ctx's error
// without waiting. The clock does not move unless the hook moves it.
func (c *Fake) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	return ctx.Err()
}

// OnSleep sets a hook that Sleep runs (outside the clock's lock) with each
// duration asked for: a test that wants sleeping to take fake time passes
// c.Advance, one that wants the world to change during a backoff changes
// it there.
func (c *Fake) OnSleep(hook func(d time.Duration)) {
	c.mu.Lock()
	c.onSleep = hook
	c.mu.Unlock()
}

// Sleeps returns the durations Sleep was asked for, in order.
func (c *Fake) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// Advance moves the clock by d and runs the timers that came due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// Timers returns how many timers were ever armed.
func (c *Fake) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitArmed waits until a timer armed after timer number after (0-based,
// in arming order; -1 for any) is pending, and returns its number. It
// fails with ctx's error when ctx ends first. It wakes on each arming, not
// by polling.
func (c *Fake) WaitArmed(ctx context.Context, after int) (int, error) {
	for {
		c.mu.Lock()
		for i := after + 1; i < len(c.timers); i++ {
			if !c.timers[i].done {
				c.mu.Unlock()
				return i, nil
			}
		}
		if c.armed == nil {
			c.armed = make(chan struct{})
		}
		armed := c.armed
		c.mu.Unlock()
		select {
		case <-armed:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
}
