package proxy

import (
	"context"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/store/grpcclient"
	"github.com/castd/castd/pkg/writeback"
)

// This file is the builder: every decorator castd puts around a remote
// and around an instance, named in the order a request passes them.
//
// Per remote — newRemote, once per distinct remote (url, instance name,
// credentials), shared by every instance that uses it, so that its
// breaker, concurrency limit and existence cache see all of its traffic:
//
//	pushes (write-back sink)  client → breaker → function gate → status recording
//	reads (fan-out tier)      client → breaker → function gate → status recording → concurrency limit → existence cache
//	action cache              client → breaker → function gate → status recording
//	asset index               the client's Remote Asset API
//
// The function gate (grpcclient.Remote.BreakerCAS) keeps digests of a
// function the remote does not advertise from it: reads of them are
// misses, writes *store.UnsupportedFunctionError, which the write-back
// queue drops. Nothing here depends on a digest function: digests carry
// theirs, and the existence cache is keyed by the whole digest.
//
// Per instance — Set.build, for "" and every project:
//
//	CAS           write-through (cache.storage-service) → queueing (write-back) → fan-out (local, then the remotes' read tiers)
//	action cache  queueing → fan-out (local, then remotes) → completeness check → local action cache
//	asset index   queueing → fan-out (local, then index remotes); see buildAssets
//
// Each arrow is a store.CAS or store.ActionCache wrapping the next, so a
// decorator implements every method of the contract (fast paths too).

// newRemote wraps the client up of the remote named name in its per-remote
// decorators.
func newRemote(name string, cfg policy.Remote, up *grpcclient.Remote, t policy.RemoteTuning, clk clock.Clock) *remote {
	r := &remote{
		name: name, cfg: cfg, up: up, rec: &outcomes{},
		roles:   map[policy.Role]bool{},
		origins: map[policy.Origin]bool{},
	}
	r.cas = newStatusRecordingCAS(up.BreakerCAS(up.ClientCAS()), r.rec)
	r.tier = readTier(r.cas, readTierOptionsOf(t), clk, r.casUnreachable)
	r.ac = newStatusRecordingActionCache(up.BreakerActionCache(up.ClientActionCache()), r.rec)
	r.assets = asset.NewRemoteIndex(up.Assets())
	return r
}

// readTierOptions is cache.remotes' share of a remote's read decorators,
// defaults applied: zero means the default, a negative existenceTTL
// (`existence-ttl: off`) no existence cache.
type readTierOptions struct {
	maxConcurrent       int
	existenceTTL        time.Duration
	existenceMaxEntries int
}

func readTierOptionsOf(t policy.RemoteTuning) readTierOptions {
	o := readTierOptions{maxConcurrent: t.MaxConcurrent, existenceTTL: t.ExistenceTTL, existenceMaxEntries: t.ExistenceMaxEntries}
	if o.maxConcurrent <= 0 {
		o.maxConcurrent = defaults.MaxConcurrentPerRemote
	}
	if o.existenceTTL == 0 {
		o.existenceTTL = defaults.ExistenceTTL
	}
	if o.existenceMaxEntries <= 0 {
		o.existenceMaxEntries = defaults.ExistenceMaxEntries
	}
	return o
}

// readTier is cas as a fan-out reads it: calls beyond the concurrency
// limit wait in line, and "present" answers are believed for the
// existence TTL while unreachable (the breaker) says the remote can be
// reached.
func readTier(cas store.CAS, o readTierOptions, clk clock.Clock, unreachable func() bool) store.CAS {
	cas = store.NewConcurrencyLimitingCAS(cas, o.maxConcurrent)
	if o.existenceTTL > 0 {
		cas = store.NewExistenceCachingCAS(cas, o.existenceTTL, o.existenceMaxEntries, clk, unreachable)
	}
	return cas
}

// build assembles the storage of instance name from its resolution r: the
// fan-outs in pull order, wrapped so that writes (and, unless disabled,
// content served by project remotes) are queued for r's push remotes.
func (s *Set) build(ctx context.Context, name string, r *policy.Resolved) (*instance, error) {
	ctx, use := withRemoteUse(ctx)
	casTiers, err := s.casTiers(ctx, r.CAS)
	if err != nil {
		return nil, err
	}
	acTiers, err := s.acTiers(ctx, r.ActionCache)
	if err != nil {
		return nil, err
	}
	pushCAS, err := s.targets(ctx, r.PushCAS)
	if err != nil {
		return nil, err
	}
	primary, err := s.storageService(ctx, r)
	if err != nil {
		return nil, err
	}
	pushAC, err := s.actionCacheTargets(ctx, r)
	if err != nil {
		return nil, err
	}
	fopts, acOpts := s.fanoutOptions(name, pushCAS, pushAC)

	fcas := fanout.NewCAS(s.local, casTiers, fopts)
	inst := &instance{resolved: r, cas: writeback.NewQueueingCAS(fcas, s.queue, queuedTargets(pushCAS, primary))}
	if primary != nil {
		inst.primary = primary.cas
		inst.cas = store.NewWriteThroughCAS(inst.cas, primary.cas, string(policy.BlockCacheStorage)+" "+primary.name)
	}

	local := store.NewCompletenessCheckingActionCache(s.local.ActionCache(name), fcas)
	fac := fanout.NewActionCache(local, acTiers, fcas, acOpts)
	inst.ac = writeback.NewQueueingActionCache(fac, s.queue, name, pushAC)

	if inst.assets, err = s.buildAssets(ctx, r, fcas); err != nil {
		return nil, err
	}
	inst.remotes = use.used
	inst.readFrom = tierNames(casTiers, acTiers)
	return inst, nil
}

// fanoutOptions is the options of instance name's CAS and action-cache
// fan-outs: cache.remotes' tuning, this Set's metrics and counters, and
// (with cache.recache-project-content) the re-caching of what a
// project-recommended remote served to the push targets.
func (s *Set) fanoutOptions(name string, pushCAS, pushAC []writeback.Target) (fanout.Options, fanout.ACOptions) {
	fopts := fanoutOptions(s.pool.tuning)
	fopts.Registerer, fopts.Instance, fopts.Counters, fopts.Logger = s.opts.Registerer, name, s.counters, s.opts.Logger
	acOpts := acOptions(s.pool.tuning)
	acOpts.Registerer, acOpts.Instance, acOpts.Counters, acOpts.Logger = s.opts.Registerer, name, s.acCount, s.opts.Logger
	if s.config().Cache.RecacheProjectContent {
		fopts.OnRemoteHit = func(d digest.Digest, t fanout.Tier) {
			s.recache(t.Origin, t.Name, writeback.KindBlob, d, "", pushCAS)
		}
		acOpts.OnRemoteHit = func(action digest.Digest, _ *repb.ActionResult, t fanout.ACTier) {
			s.recache(t.Origin, t.Name, writeback.KindActionResult, action, name, pushAC)
		}
	}
	return fopts, acOpts
}
