package fanout

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/internal/grpcerr"
)

// Order is the pull order one ordered read walks: its tiers' names (the
// labels of their errors, "upstream[1] NAME") and the failover delay that
// every tier but the last must answer within. Zero FailoverDelay means
// defaults.FailoverDelay.
type Order struct {
	Names         []string
	FailoverDelay time.Duration
}

// Hooks are a walk's accounting, all optional, called from the walking
// goroutine: Hit with the tier that served, Skipped with the labelled
// error of each tier that failed (anything but NOT_FOUND) while the caller
// was still there, Missed when the walk ends NOT_FOUND.
type Hooks struct {
	Hit     func(i int)
	Skipped func(err error)
	Missed  func()
}

// Walk is the one loop of the ordered read fan-outs (the CAS fetch, the
// action cache, the asset index). It calls ask for tier 0, 1, ... until
// one serves, and returns that value and tier. ask makes the tier's call
// with call.Context(), which for every tier but the last carries
// store.WithFallback (one attempt, no retry sleeps) and is cut off as
// stalled (store.ErrStalled) when the tier has not answered within the
// failover delay; the last tier keeps its client's retries and timeouts.
// ask may call call.Done as soon as the tier answered, so that what it does
// with the answer (a completeness check) is not cut off.
//
// NOT_FOUND and every other failure move on to the next tier (DESIGN
// §3.3); the caller's cancellation ends the walk with CANCELED or
// DEADLINE_EXCEEDED, never a miss. A walk that finds nothing returns
// foundNowhere's error: NOT_FOUND listing every tier's reason when one
// tier answered, the failure's own code when none could. Cost: one ask
// and one timer per tier tried. Safe for concurrent use if ask is.
func Walk[T any](ctx context.Context, o Order, what string, h Hooks, ask func(ctx context.Context, i int, call *Call) (T, error)) (T, int, error) {
	delay := o.FailoverDelay
	if delay <= 0 {
		delay = defaults.FailoverDelay
	}
	f := failover{delay: delay, tiers: len(o.Names)}
	return walkSteps(ctx, len(o.Names), what, h, func(ctx context.Context, i int) (T, int, []error, error) {
		call := f.begin(ctx, i)
		defer call.release()
		v, err := ask(ctx, i, call)
		if err = call.Done(err); err != nil {
			err = label(remoteLabel(i, o.Names[i]), err)
			return v, i + 1, []error{err}, err
		}
		return v, i + 1, nil, nil
	})
}

// walkSteps is Walk's loop over steps that may each ask more than one tier
// (a CAS fetch hedges a slow tier with the next and resumes a broken
// stream from later ones): step starts at tier i and returns the first
// tier it did not ask, the labelled failures of those it asked, in pull
// order, and nil when it served. An errLocal ends the walk with its
// error: the next tier would fail the same way.
func walkSteps[T any](ctx context.Context, n int, what string, h Hooks, step func(ctx context.Context, i int) (T, int, []error, error)) (T, int, error) {
	var zero T
	var failures []error
	for i := 0; i < n; {
		v, next, tried, err := step(ctx, i)
		if err == nil {
			if h.Hit != nil {
				h.Hit(i)
			}
			return v, i, nil
		}
		if gone := grpcerr.CallerGone(ctx); gone != nil {
			return zero, -1, gone
		}
		var local errLocal
		if errors.As(err, &local) {
			return zero, -1, local.err
		}
		for _, f := range tried {
			if h.Skipped != nil && status.Code(f) != codes.NotFound {
				h.Skipped(f)
			}
		}
		failures = append(failures, tried...)
		i = next
	}
	err := foundNowhere(what, failures)
	if h.Missed != nil && status.Code(err) == codes.NotFound {
		h.Missed()
	}
	return zero, -1, err
}
