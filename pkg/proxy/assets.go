package proxy

import (
	"context"

	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/writeback"
)

// buildAssets assembles the Remote Asset fan-out of r: the local asset
// index, then r's index remotes in pull order, each answering only for
// content present in (or fetchable through) cas. A client's Push is queued
// for r's push-enabled index remotes; an association served by a
// project-recommended remote is re-cached on them unless disabled.
func (s *Set) buildAssets(ctx context.Context, r *policy.Resolved, cas store.CAS) (asset.Index, error) {
	rems, err := s.dial(ctx, r.Assets)
	if err != nil {
		return nil, err
	}
	tiers := make([]asset.Tier, len(rems))
	for i, rem := range rems {
		tiers[i] = asset.Tier{Name: rem.name, Index: asset.NewCompletenessCheckingIndex(rem.assets, cas), Origin: string(r.Assets[i].Origin)}
	}
	push, err := s.targets(ctx, r.PushAssets)
	if err != nil {
		return nil, err
	}
	opts := assetOptions(s.pool.tuning)
	opts.Logger = s.opts.Logger
	if s.config().Cache.RecacheProjectContent {
		opts.OnRemoteHit = func(a asset.Asset, ref asset.Ref, t asset.Tier) { s.recacheAsset(a, ref, t, push) }
	}
	fidx := asset.NewFanout(asset.NewCompletenessCheckingIndex(s.assetIdx, cas), tiers, opts)
	return writeback.NewQueueingIndex(fidx, s.queue, push), nil
}

// recacheAsset queues an association a project-recommended remote served
// for the user's push remotes.
func (s *Set) recacheAsset(a asset.Asset, ref asset.Ref, t asset.Tier, targets []writeback.Target) {
	if t.Origin != string(policy.OriginProject) || len(targets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recacheWait)
	defer cancel()
	if err := s.queue.EnqueueAsset(ctx, a, ref, targets); err != nil {
		s.opts.Logger.Warn("write-back: not re-caching a project asset", "from", t.Name, "asset", a.String(), "err", err)
	}
}

// Assets is an asset.Resolver: the Remote Asset index and CAS of
// instanceName, or INVALID_ARGUMENT for an unknown name.
func (s *Set) Assets(_ context.Context, instanceName string) (asset.Index, store.CAS, error) {
	inst, err := s.lookup(instanceName)
	if err != nil {
		return nil, nil, err
	}
	return inst.assets, inst.cas, nil
}
