package proxy

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/writeback"
)

// recacheWait bounds how long re-caching a project remote's content waits
// for room in a full queue; after that it is skipped with a warning (it
// was never a client's write).
const recacheWait = 10 * time.Second

// instance is the storage one instance name is served from.
type instance struct {
	resolved *policy.Resolved
	cas      store.CAS
	ac       store.ActionCache
	assets   asset.Index
	primary  store.CAS             // cache.storage-service, nil without one
	remotes  map[*remote][]useMark // the remotes build took from the pool, and how it used them
	// readFrom names the remotes read from, storage then action cache,
	// in pull order without repeats (for status).
	readFrom []string

	reg      *registration // the project registration served; nil for "" and `projects:` names
	lastUsed atomic.Int64  // unix nanoseconds of the last lookup, for registrations
}

// touch notes a use of a registered instance at now. Lookups are frequent:
// the shared word is only written when the minute changes.
func (inst *instance) touch(now time.Time) {
	if inst.reg == nil {
		return
	}
	if n := now.UnixNano(); n-inst.lastUsed.Load() > int64(time.Minute) {
		inst.lastUsed.Store(n)
	}
}

// storageService is r's cache.storage-service, or nil: the primary store
// that client writes go through to (store.NewWriteThroughCAS).
func (s *Set) storageService(ctx context.Context, r *policy.Resolved) (*remote, error) {
	for _, c := range r.CAS {
		if c.Section == policy.BlockCacheStorage {
			return s.pool.get(ctx, c)
		}
	}
	return nil, nil
}

// queuedTargets is targets without primary: blobs written through to the
// storage service need no queued push there. (Re-cached project content,
// never a client's write, is still queued for every target.)
func queuedTargets(targets []writeback.Target, primary *remote) []writeback.Target {
	if primary == nil {
		return targets
	}
	var out []writeback.Target
	for _, t := range targets {
		if t.Name != primary.name {
			out = append(out, t)
		}
	}
	return out
}

// dial takes the remotes of rs (one role's resolved list, in pull order)
// from the pool and notes each one's use in its role: the one loop from a
// resolved list to remotes, whatever the role.
func (s *Set) dial(ctx context.Context, rs []policy.Remote) ([]*remote, error) {
	out := make([]*remote, 0, len(rs))
	for _, r := range rs {
		rem, err := s.pool.get(ctx, r)
		if err != nil {
			return nil, err
		}
		rem.use(ctx, r)
		out = append(out, rem)
	}
	return out, nil
}

// casTiers is r.CAS (RoleStorage) as fan-out tiers.
func (s *Set) casTiers(ctx context.Context, rs []policy.Remote) ([]fanout.Tier, error) {
	rems, err := s.dial(ctx, rs)
	out := make([]fanout.Tier, len(rems))
	for i, rem := range rems {
		out[i] = fanout.Tier{Name: rem.name, CAS: rem.tier, Origin: string(rs[i].Origin)}
	}
	return out, err
}

// acTiers is r.ActionCache (RoleActionCache) as fan-out tiers.
func (s *Set) acTiers(ctx context.Context, rs []policy.Remote) ([]fanout.ACTier, error) {
	rems, err := s.dial(ctx, rs)
	out := make([]fanout.ACTier, len(rems))
	for i, rem := range rems {
		out[i] = fanout.ACTier{Name: rem.name, AC: rem.ac, Origin: string(rs[i].Origin)}
	}
	return out, err
}

// targets registers the push remotes with the queue. A project-recommended
// remote never has Push set by policy; it is skipped here as well.
func (s *Set) targets(ctx context.Context, rs []policy.Remote) ([]writeback.Target, error) {
	var out []writeback.Target
	for _, r := range rs {
		if !r.Push || r.Origin == policy.OriginProject {
			continue
		}
		rem, err := s.pool.get(ctx, r)
		if err != nil {
			return nil, err
		}
		rem.target.Store(true)
		s.queue.Register(rem.name, writeback.Sink{CAS: rem.cas, ActionCache: rem.ac, Assets: rem.assets})
		out = append(out, writeback.Target{Name: rem.name, Origin: r.Origin})
	}
	return out, nil
}

// recache queues content a project-recommended remote served for the
// user's push remotes; content from the user's own remotes is not pushed
// again.
func (s *Set) recache(origin, from string, kind writeback.Kind, d digest.Digest, instanceName string, targets []writeback.Target) {
	if origin != string(policy.OriginProject) || len(targets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recacheWait)
	defer cancel()
	if err := s.queue.Enqueue(ctx, kind, d, instanceName, targets); err != nil {
		s.opts.Logger.Warn("write-back: not re-caching project content", "from", from, "kind", kind.String(), "digest", d.String(), "err", err)
	}
}

// tierNames is the names of cas then ac, without repeats.
func tierNames(cas []fanout.Tier, ac []fanout.ACTier) []string {
	out := []string{}
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, t := range cas {
		add(t.Name)
	}
	for _, t := range ac {
		add(t.Name)
	}
	return out
}
