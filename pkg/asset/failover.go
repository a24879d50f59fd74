package asset

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// DefaultFailoverDelay is how long an index remote with a later one behind
// it may take to answer a lookup (the CAS fan-out's default too).
const DefaultFailoverDelay = time.Second

// lookupTier asks the i-th tier about a. A tier with a later one behind it
// must not hold a lookup that the next can answer: it gets a single
// attempt (store.WithFallback) and the failover delay to answer, after
// which it is cut off with store.ErrStalled (its breaker counts the stall)
// and its answer is DEADLINE_EXCEEDED. The last tier keeps the remote
// client's retries and timeouts.
func (f *fanoutIndex) lookupTier(ctx context.Context, i int, a Asset, oldest time.Time) (Ref, error) {
	t := f.tiers[i]
	if i == len(f.tiers)-1 {
		return t.Index.Lookup(ctx, a, oldest)
	}
	cctx, cancel := context.WithCancelCause(store.WithFallback(ctx))
	defer cancel(nil)
	timer := time.AfterFunc(f.opts.FailoverDelay, func() { cancel(store.ErrStalled) })
	ref, err := t.Index.Lookup(cctx, a, oldest)
	if !timer.Stop() && err != nil && ctx.Err() == nil {
		return Ref{}, status.Errorf(codes.DeadlineExceeded, "no answer within the failover delay of %v; the next index remote was asked", f.opts.FailoverDelay)
	}
	return ref, err
}
