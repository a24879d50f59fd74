package proxy

import (
	"slices"
	"strings"
	"time"

	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/writeback"

	"github.com/castd/castd/pkg/store/grpcclient"
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
	// Health is the worst health of the roles in use: "down" (a role's
	// last call failed transiently or its breaker is open), "refused" (a
	// role's last call was refused permanently), "ok" or "unknown".
	// Breaker is the CAS role's breaker, "closed", "open" or "half-open";
	// LastError the most recent failure of any role.
	Health, Breaker, LastError string
	// PerRole is the health of each role (cas, action-cache, asset), so
	// that a remote refusing action-cache writes still shows its CAS ok.
	PerRole      []grpcclient.RoleHealth
	Hits, Misses int64
	QueueDepth   int
}

// Remotes returns the status of every remote in first-use order. Cost: a
// few mutexes per remote plus one pass over the queue.
func (s *Set) Remotes() []RemoteStatus {
	qs := s.queue.Stats()
	var out []RemoteStatus
	for _, r := range s.pool.all() {
		hits, misses := r.rec.counts()
		perRole := r.up.Health()
		health, lastErr := overall(perRole)
		r.mu.Lock()
		st := RemoteStatus{
			Name: r.name, URL: r.cfg.URL, InstanceName: r.cfg.InstanceName,
			Roles: sortedKeys(r.roles), Origin: string(firstOrigin(r.origins)), Push: r.push,
			Health: health, Breaker: r.up.BreakerState(grpcclient.RoleCAS), LastError: lastErr,
			PerRole: perRole, Hits: hits, Misses: misses,
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

// overall is the worst health of roles (down, refused, ok, unknown) and the
// most recent failure's message.
func overall(roles []grpcclient.RoleHealth) (health, lastErr string) {
	rank := map[string]int{grpcclient.HealthUnknown: 0, grpcclient.HealthOK: 1, grpcclient.HealthRefused: 2, grpcclient.HealthDown: 3}
	health = grpcclient.HealthUnknown
	var latest time.Time
	for _, h := range roles {
		if rank[h.Health] > rank[health] {
			health = h.Health
		}
		if h.LastError != "" && h.Health != grpcclient.HealthOK && !h.Since.Before(latest) {
			latest, lastErr = h.Since, h.LastError
		}
	}
	return health, lastErr
}

func sortedKeys(m map[policy.Role]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
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

// ActionCacheCounts returns the action-cache lookups since start, clients' and
// Execute's: hits in any tier (local or a remote) and misses everywhere.
func (s *Set) ActionCacheCounts() (hits, misses uint64) {
	a := s.acCount.Snapshot()
	return a.Hits(), a.Misses
}

// InstanceStatus is one served instance name and the names of the remotes
// it reads from (RemoteStatus.Name), storage then action cache, in pull
// order without repeats.
type InstanceStatus struct {
	Name    string
	Remotes []string
}

// InstanceRemotes returns every served instance with its remotes, sorted
// by name. Cost: one read lock and a copy of the names.
func (s *Set) InstanceRemotes() []InstanceStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]InstanceStatus, 0, len(s.instances))
	for name, inst := range s.instances {
		out = append(out, InstanceStatus{Name: name, Remotes: slices.Clone(inst.readFrom)})
	}
	slices.SortFunc(out, func(a, b InstanceStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
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
