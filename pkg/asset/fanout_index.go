package asset

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	// may take to answer before the next is asked (see lookupTier). Zero
	// means DefaultFailoverDelay.
	FailoverDelay time.Duration
}

// NewFanout returns the ordered asset index: local first, then the index
// remotes in pull order. A local failure is returned; a remote that fails
// is skipped and logged, and one with a later remote behind it gets a
// single attempt and FanoutOptions.FailoverDelay to answer; a miss is
// NOT_FOUND only when every tier missed or failed (the message lists the
// failures). A remote hit is recorded in local, under the URI that matched,
// with the remote's expiry. Record writes to local only (the write-back
// queue wraps the fan-out, see writeback.NewQueueingIndex). Wrap local and every tier's Index in NewCompletenessCheckingIndex
// so that references to content that is gone are misses of that tier. Safe
// for concurrent use.
func NewFanout(local Index, tiers []Tier, opts FanoutOptions) Index {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FailoverDelay <= 0 {
		opts.FailoverDelay = DefaultFailoverDelay
	}
	return &fanoutIndex{local: local, tiers: append([]Tier(nil), tiers...), opts: opts}
}

type fanoutIndex struct {
	local Index
	tiers []Tier
	opts  FanoutOptions
}

func (f *fanoutIndex) Lookup(ctx context.Context, a Asset, oldest time.Time) (Ref, error) {
	ref, err := f.local.Lookup(ctx, a, oldest)
	if status.Code(err) != codes.NotFound {
		return ref, err
	}
	var failures []string
	failed := codes.OK // the last failure's code while every remote failed
	for i, t := range f.tiers {
		ref, err := f.lookupTier(ctx, i, a, oldest)
		switch {
		case err == nil:
			f.remoteHit(ctx, a, ref, t)
			return ref, nil
		case ctx.Err() != nil:
			return Ref{}, status.FromContextError(ctx.Err()).Err()
		case status.Code(err) != codes.NotFound:
			f.opts.Logger.Warn("asset: lookup skips a failing index remote", "remote", t.Name, "asset", a.String(), "err", err)
			failures = append(failures, t.Name+": "+err.Error())
			failed = status.Code(err)
		}
	}
	if len(failures) == len(f.tiers) && failed != codes.OK {
		// No remote could answer: not a miss; the failure keeps its code.
		return Ref{}, status.Errorf(failed, "%s: no index remote could answer: %s", a, strings.Join(failures, "; "))
	}
	if len(failures) > 0 {
		return Ref{}, status.Errorf(codes.NotFound, "%s not found (skipped failing remotes: %s)", a, strings.Join(failures, "; "))
	}
	return Ref{}, status.Errorf(codes.NotFound, "%s not found locally or on %d index remotes", a, len(f.tiers))
}

// remoteHit records a tier's answer locally and reports it. The answer is
// served even if the local record fails (the next lookup asks the remote
// again), so that failure is only logged.
func (f *fanoutIndex) remoteHit(ctx context.Context, a Asset, ref Ref, t Tier) {
	narrowed := Asset{Kind: a.Kind, URIs: []string{ref.URI}, Qualifiers: a.Qualifiers}
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
