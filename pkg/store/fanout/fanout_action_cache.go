package fanout

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/defaults"
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
// ACOptions.FailoverDelay, see Walk); a miss everywhere reachable is
// NOT_FOUND listing the reasons, and when no remote could answer the
// failure keeps its code.
// Local hits are returned as local answers them: wrap local in
// store.NewCompletenessCheckingActionCache to check those too.
// UpdateActionResult writes local only. Cost
// of a remote hit: one remote call plus the completeness check (one
// FindMissing through the fan-out and a Get per output directory). Safe for
// concurrent use.
func NewActionCache(local store.ActionCache, remotes []ACTier, cas store.CAS, opts ACOptions) store.ActionCache {
	if opts.Logger == nil {
		opts.Logger = defaultLogger()
	}
	if opts.FailoverDelay <= 0 {
		opts.FailoverDelay = defaults.FailoverDelay
	}
	a := &fanoutActionCache{
		local:   local,
		remotes: remotes,
		cas:     cas,
		opts:    opts,
		metrics: newMetrics(opts.Registerer, opts.Instance, KindActionCache, opts.Counters),
		order:   Order{FailoverDelay: opts.FailoverDelay},
	}
	for _, t := range remotes {
		a.order.Names = append(a.order.Names, t.Name)
	}
	return a
}

type fanoutActionCache struct {
	local   store.ActionCache
	remotes []ACTier
	cas     store.CAS // where the blobs a remote result references must be
	opts    ACOptions
	metrics *metrics
	order   Order
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
	hooks := Hooks{Hit: func(i int) { m.remoteHit(a.remotes[i].Name, 0) }, Missed: m.miss}
	ar, i, err := Walk(ctx, a.order, "action result "+action.String(), hooks, func(ctx context.Context, i int, call *Call) (*repb.ActionResult, error) {
		return a.complete(i, call).GetActionResult(ctx, action)
	})
	if err != nil {
		return nil, err
	}
	a.record(ctx, action, ar, i)
	return ar, nil
}

// complete is the i-th remote as one lookup asks it: its answer bounded by
// call (the failover delay), then checked for completeness against the
// CAS fan-out, which bounds its own tiers, so that a complete but large
// result is not cut off as a stall.
func (a *fanoutActionCache) complete(i int, call *Call) store.ActionCache {
	return store.NewCompletenessCheckingActionCache(&calledAC{ActionCache: a.remotes[i].AC, call: call}, a.cas)
}

// calledAC makes its remote's GetActionResult the call of a walk.
type calledAC struct {
	store.ActionCache
	call *Call
}

func (c *calledAC) GetActionResult(_ context.Context, action digest.Digest) (*repb.ActionResult, error) {
	ar, err := c.ActionCache.GetActionResult(c.call.Context(), action)
	return ar, c.call.Done(err)
}

// record stores a remote hit locally and reports it. A failed local write
// is logged, not returned: the result is complete and the client can use
// it; the next lookup simply asks the remote again.
func (a *fanoutActionCache) record(ctx context.Context, action digest.Digest, ar *repb.ActionResult, i int) {
	t := a.remotes[i]
	if err := a.local.UpdateActionResult(ctx, action, ar); err != nil {
		a.opts.Logger.Warn("fanout: could not record a remote action result locally", "action", action.String(), "remote", t.Name, "err", labelLocal(err))
		return
	}
	if a.opts.OnRemoteHit != nil {
		a.opts.OnRemoteHit(action, ar, t)
	}
}

func (a *fanoutActionCache) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	return labelLocal(a.local.UpdateActionResult(ctx, action, result))
}
