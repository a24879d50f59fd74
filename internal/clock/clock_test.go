package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/castd/castd/internal/clock"
)

func TestFakeAdvanceFiresDueTimers(t *testing.T) {
	// Why: tests drive timeouts by moving the clock; a timer fires exactly
	// when its time has come, and a stopped one never does.
	c := clock.NewFake(time.Unix(100, 0))
	var fired []string
	c.AfterFunc(time.Second, func() { fired = append(fired, "1s") })
	c.AfterFunc(2*time.Second, func() { fired = append(fired, "2s") })
	stopped := c.AfterFunc(time.Second, func() { fired = append(fired, "stopped") })
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	c.Advance(999 * time.Millisecond)
	if len(fired) != 0 {
		t.Fatalf("fired %v before their time", fired)
	}
	c.Advance(time.Millisecond)
	if len(fired) != 1 || fired[0] != "1s" {
		t.Fatalf("after 1s fired %v; want [1s]", fired)
	}
	c.Advance(time.Hour)
	if len(fired) != 2 || fired[1] != "2s" {
		t.Fatalf("after 2s fired %v; want [1s 2s]", fired)
	}
	if got := c.Now(); !got.Equal(time.Unix(100, 0).Add(time.Hour + time.Second)) {
		t.Fatalf("Now() = %v", got)
	}
}

func TestFakeSleepRecordsWithoutWaiting(t *testing.T) {
	// Why: retry backoff and scrub pacing are asserted on the durations
	// asked for; the hook lets a test make sleeping take fake time.
	c := clock.NewFake(time.Unix(0, 0))
	c.OnSleep(c.Advance)
	if err := c.Sleep(context.Background(), time.Minute); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with a cancelled context = %v; want Canceled", err)
	}
	if got := c.Sleeps(); len(got) != 2 || got[0] != time.Minute || got[1] != time.Second {
		t.Fatalf("Sleeps() = %v", got)
	}
	if got := c.Now(); !got.Equal(time.Unix(61, 0)) {
		t.Fatalf("Now() = %v; want the sleeps added", got)
	}
}

func TestFakeWaitArmed(t *testing.T) {
	// Why: a test must know that the code under test armed its timer
	// before it advances the clock past it.
	c := clock.NewFake(time.Unix(0, 0))
	got := make(chan int, 1)
	go func() {
		i, err := c.WaitArmed(context.Background(), -1)
		if err != nil {
			i = -2
		}
		got <- i
	}()
	c.AfterFunc(time.Second, func() {})
	if i := <-got; i != 0 {
		t.Fatalf("WaitArmed = %d; want timer 0", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.WaitArmed(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitArmed with nothing armed after #0 = %v; want Canceled", err)
	}
}

func TestRealSleepEndsWithItsContext(t *testing.T) {
	// Why: shutdown must not wait out a long backoff.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := clock.OrReal(nil).Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v; want Canceled", err)
	}
	if err := clock.Real().Sleep(context.Background(), time.Microsecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
