package fanout

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// NewActionCache returns the ordered read fan-out for action results:
// GetActionResult asks local, then each remote in pull order. A remote's
// result is served only when every blob it references exists in cas (pass
// the CAS fan-out, so "exists" means "in the local store or fetchable";
// output Trees are fetched to be read); an incomplete result counts as that
// remote's miss and the next remote is asked. A served remote result is
// recorded in local and reported to ACOptions.OnRemoteHit. Remote failures
// are skipped (a remote with a later tier behind it gets one attempt and
// ACOptions.FailoverDelay, see failover); a miss everywhere reachable is
// NOT_FOUND listing the reasons, and when no remote could answer the
// failure keeps its code.
// Local hits are returned as local answers them: wrap local in
// store.NewCompletenessCheckingActionCache to check those too.
// UpdateActionResult writes local only, then calls ACOptions.OnUpdate. Cost
// of a remote hit: one remote call plus the completeness check (one
// FindMissing through the fan-out and a Get per output directory). Safe for
// concurrent use.
func NewActionCache(local store.ActionCache, remotes []ACTier, cas store.CAS, opts ACOptions) store.ActionCache {
	if opts.Logger == nil {
		opts.Logger = defaultLogger()
	}
	if opts.FailoverDelay <= 0 {
		opts.FailoverDelay = DefaultFailoverDelay
	}
	a := &fanoutActionCache{
		local:    local,
		opts:     opts,
		metrics:  newMetrics(opts.Registerer, opts.Instance, KindActionCache, opts.Counters),
		failover: failover{delay: opts.FailoverDelay, tiers: len(remotes)},
	}
	for i, t := range remotes {
		bounded := &failoverAC{ActionCache: t.AC, f: a.failover, i: i}
		a.remotes = append(a.remotes, ACTier{Name: t.Name, Origin: t.Origin, AC: store.NewCompletenessCheckingActionCache(bounded, cas)})
		a.origins = append(a.origins, t)
	}
	return a
}

type fanoutActionCache struct {
	local    store.ActionCache
	remotes  []ACTier // completeness-checked
	origins  []ACTier // as the caller gave them, for hooks
	opts     ACOptions
	metrics  *metrics
	failover failover
}

func (a *fanoutActionCache) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	m := a.metrics.forLookup(ctx)
	ar, err := a.local.GetActionResult(ctx, action)
	if status.Code(err) != codes.NotFound {
		if err == nil {
			m.localHit(0)
		}
		return ar, labelLocal(err)
	}
	var failures []error
	for i, t := range a.remotes {
		ar, err := t.AC.GetActionResult(ctx, action)
		if err == nil {
			m.remoteHit(a.origins[i].Name, 0)
			a.record(ctx, action, ar, i)
			return ar, nil
		}
		if gone := grpcerr.CallerGone(ctx); gone != nil {
			return nil, gone
		}
		failures = append(failures, label(remoteLabel(i, t.Name), err))
	}
	err = foundNowhere("action result "+action.String(), failures)
	if status.Code(err) == codes.NotFound {
		m.miss()
	}
	return nil, err
}

// failoverAC asks the i-th remote action cache within the failover delay
// unless it is the last tier. It sits under the completeness check, whose
// blob lookups go through the CAS fan-out (which bounds its own tiers), so
// that a complete but large result is not cut off as a stall.
type failoverAC struct {
	store.ActionCache
	f failover
	i int
}

func (c *failoverAC) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	call := c.f.begin(ctx, c.i)
	defer call.release()
	ar, err := c.ActionCache.GetActionResult(call.ctx, action)
	return ar, call.outcome(call.answered(), err)
}

// record stores a remote hit locally and reports it. A failed local write
// is logged, not returned: the result is complete and the client can use
// it; the next lookup simply asks the remote again.
func (a *fanoutActionCache) record(ctx context.Context, action digest.Digest, ar *repb.ActionResult, i int) {
	t := a.origins[i]
	if err := a.local.UpdateActionResult(ctx, action, ar); err != nil {
		a.opts.Logger.Warn("fanout: could not record a remote action result locally", "action", action.String(), "remote", t.Name, "err", labelLocal(err))
		return
	}
	if a.opts.OnRemoteHit != nil {
		a.opts.OnRemoteHit(action, ar, t)
	}
}

func (a *fanoutActionCache) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	if err := a.local.UpdateActionResult(ctx, action, result); err != nil {
		return labelLocal(err)
	}
	if a.opts.OnUpdate != nil {
		a.opts.OnUpdate(action, result)
	}
	return nil
}
