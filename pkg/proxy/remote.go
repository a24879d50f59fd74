package proxy

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// remote is one upstream client with what the status report needs: the
// roles and origins it was resolved with and its recent outcomes.
type remote struct {
	name string
	cfg  policy.Remote // as first resolved
	up   *grpcclient.Remote
	// The remote's storage as newRemote decorates it (see build.go).
	cas    store.CAS         // for pushes: client, breaker, status recording
	tier   store.CAS         // for reads: cas, concurrency limit, existence cache
	ac     store.ActionCache // client, breaker, status recording
	assets asset.Index       // the remote's Remote Asset API
	rec    *outcomes
	// target is set once r (or its blobs) was registered with the
	// write-back queue: the queue may push to it until Close.
	target atomic.Bool

	mu      sync.Mutex
	roles   map[policy.Role]bool
	origins map[policy.Origin]bool
	push    bool
}

// casUnreachable reports whether the remote's CAS breaker is open, for
// its existence cache.
func (r *remote) casUnreachable() bool {
	return r.up.BreakerState(grpcclient.RoleCAS) == grpcclient.StateOpen
}

// useMark is one use of a remote by an instance: its role, origin and
// push decision.
type useMark struct {
	role   policy.Role
	origin policy.Origin
	push   bool
}

// use notes that an instance resolved r as res (in res's role, with its
// origin and push decision), also in ctx's collector (see withRemoteUse).
func (r *remote) use(ctx context.Context, res policy.Remote) {
	m := useMark{res.Role, res.Origin, res.Push}
	r.mark(m)
	usedBy(ctx).mark(r, m)
}

func (r *remote) mark(m useMark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roles[m.role] = true
	r.origins[m.origin] = true
	r.push = r.push || m.push
}

// resetUses replaces what status shows of r's roles, origins and push by
// marks (the uses of the instances now served), keeping an execution role:
// that one is marked per request.
func (r *remote) resetUses(marks []useMark) {
	r.mu.Lock()
	exec := r.roles[policy.RoleExecution]
	r.roles, r.origins, r.push = map[policy.Role]bool{}, map[policy.Origin]bool{}, false
	if exec {
		r.roles[policy.RoleExecution] = true
	}
	r.mu.Unlock()
	for _, m := range marks {
		r.mark(m)
	}
}

// executes reports whether r ever served as an execution remote; those are
// taken per request, so no instance lists them.
func (r *remote) executes() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.roles[policy.RoleExecution]
}

// outcomes counts a remote's hits and misses; its health is kept per role
// by the upstream client (grpcclient.Remote.Health). Safe for concurrent use.
type outcomes struct {
	mu     sync.Mutex
	hits   int64
	misses int64
}

func (o *outcomes) ok(hit, miss bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if hit {
		o.hits++
	}
	if miss {
		o.misses++
	}
}

// counts returns the hits and misses so far.
func (o *outcomes) counts() (hits, misses int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits, o.misses
}
