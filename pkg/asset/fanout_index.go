package asset

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store/fanout"
)

// Tier is one index remote in the pull order. Name labels errors and logs
// (e.g. HOST:PORT); Origin says where the remote was configured ("user",
// "user-project", "project"), so OnRemoteHit can tell project-recommended
// content apart, as for the CAS fan-out's tiers.
type Tier struct {
	Name   string
	Index  Index
	Origin string
}

// FanoutOptions tunes NewFanout. The zero value is usable.
type FanoutOptions struct {
	// OnRemoteHit is called after a reference found on tier was recorded
	// locally; a is narrowed to the URI that matched. The re-caching of
	// project-recommended content hangs off it.
	OnRemoteHit func(a Asset, ref Ref, tier Tier)
	// Logger receives skipped-remote reports; nil means slog.Default().
	Logger *slog.Logger
	// FailoverDelay is how long an index remote with a later one behind it
	// may take to answer before the next is asked (see fanout.Walk). Zero
	// means defaults.FailoverDelay.
	FailoverDelay time.Duration
}

// NewFanout returns the ordered asset index: local first, then the index
// remotes in pull order, walked by fanout.Walk like the CAS and action
// cache fan-outs. A local failure is returned; a remote that fails is
// skipped and logged, and one with a later remote behind it gets a single
// attempt and FanoutOptions.FailoverDelay to answer; a miss is NOT_FOUND
// listing each remote's reason, and when no remote could answer the
// failure keeps its code. A remote hit is recorded in local, under the URI that matched,
// with the remote's expiry. Record writes to local only (the write-back
// queue wraps the fan-out, see writeback.NewQueueingIndex). Wrap local and every tier's Index in NewCompletenessCheckingIndex
// so that references to content that is gone are misses of that tier. Safe
// for concurrent use.
func NewFanout(local Index, tiers []Tier, opts FanoutOptions) Index {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := &fanoutIndex{local: local, tiers: append([]Tier(nil), tiers...), opts: opts}
	f.order.FailoverDelay = opts.FailoverDelay
	for _, t := range tiers {
		f.order.Names = append(f.order.Names, t.Name)
	}
	return f
}

type fanoutIndex struct {
	local Index
	tiers []Tier
	order fanout.Order
	opts  FanoutOptions
}

func (f *fanoutIndex) Lookup(ctx context.Context, a Asset, oldest time.Time) (Ref, error) {
	ref, err := f.local.Lookup(ctx, a, oldest)
	if status.Code(err) != codes.NotFound {
		return ref, err
	}
	hooks := fanout.Hooks{Skipped: func(err error) {
		f.opts.Logger.Warn("asset: lookup skips a failing index remote", "asset", a.String(), "err", err)
	}}
	ref, i, err := fanout.Walk(ctx, f.order, a.String(), hooks, func(ctx context.Context, i int, call *fanout.Call) (Ref, error) {
		return f.tiers[i].Index.Lookup(call.Context(), a, oldest)
	})
	if err != nil {
		return Ref{}, err
	}
	f.remoteHit(ctx, a, ref, f.tiers[i])
	return ref, nil
}

// remoteHit records a tier's answer locally and reports it. The answer is
// served even if the local record fails (the next lookup asks the remote
// again), so that failure is only logged.
func (f *fanoutIndex) remoteHit(ctx context.Context, a Asset, ref Ref, t Tier) {
	narrowed := a
	narrowed.URIs = []string{ref.URI}
	if err := f.local.Record(ctx, narrowed, ref); err != nil {
		f.opts.Logger.Error("asset: recording a remote hit locally failed", "remote", t.Name, "asset", narrowed.String(), "err", err)
		return
	}
	if f.opts.OnRemoteHit != nil {
		f.opts.OnRemoteHit(narrowed, ref, t)
	}
}

func (f *fanoutIndex) Record(ctx context.Context, a Asset, ref Ref) error {
	return f.local.Record(ctx, a, ref)
}
