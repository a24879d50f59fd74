package remotes

import (
	"slices"

	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy/writeback"
)

// RemoteStatus is one remote's state for the Status RPC.
type RemoteStatus struct {
	Name, URL, InstanceName string
	// Roles are "storage" and/or "action-cache".
	Roles []string
	// Origin is the origin the remote was first resolved with ("user",
	// "user-project", "project").
	Origin string
	// Push is true when some instance may push to the remote.
	Push bool
	// Health is "ok", "down" or "unknown"; Breaker "closed", "open" or
	// "half-open".
	Health, Breaker, LastError string
	Hits, Misses               int64
	QueueDepth                 int
}

// Remotes returns the status of every remote in first-use order. Cost: a
// few mutexes per remote plus one pass over the queue.
func (s *Set) Remotes() []RemoteStatus {
	qs := s.queue.Stats()
	var out []RemoteStatus
	for _, r := range s.pool.all() {
		health, lastErr, hits, misses := r.rec.health()
		breaker := r.up.BreakerState()
		if breaker == "open" {
			health = "down"
		}
		r.mu.Lock()
		st := RemoteStatus{
			Name: r.name, URL: r.cfg.URL, InstanceName: r.cfg.InstanceName,
			Roles: sortedKeys(r.roles), Origin: string(firstOrigin(r.origins)), Push: r.push,
			Health: health, Breaker: breaker, LastError: lastErr, Hits: hits, Misses: misses,
			QueueDepth: qs.Remotes[r.name].Depth,
		}
		r.mu.Unlock()
		if st.LastError == "" {
			st.LastError = qs.Remotes[r.name].LastError
		}
		out = append(out, st)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// firstOrigin prefers the user's own origins over a project's.
func firstOrigin(m map[policy.Origin]bool) policy.Origin {
	for _, o := range []policy.Origin{policy.OriginUser, policy.OriginUserProject, policy.OriginProject} {
		if m[o] {
			return o
		}
	}
	return ""
}

// Queue returns the write-back queue's depth, oldest entry age and counters.
func (s *Set) Queue() writeback.Stats { return s.queue.Stats() }

// Local returns the local store's hits and misses since start, CAS and
// action cache reads together.
func (s *Set) Local() (hits, misses uint64) {
	c, a := s.counters.Snapshot(), s.acCount.Snapshot()
	return c.LocalHits + a.LocalHits, c.Misses + a.Misses
}

// Instances returns the instance names currently served, sorted.
func (s *Set) Instances() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for k := range s.instances {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
