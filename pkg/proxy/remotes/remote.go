package remotes

import (
	"sync"

	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy/asset"
	"github.com/castd/castd/pkg/proxy/upstream"
	"github.com/castd/castd/pkg/store"
)

// remote is one upstream client with what the status report needs: the
// roles and origins it was resolved with and its recent outcomes.
type remote struct {
	name   string
	cfg    policy.Remote // as first resolved
	up     *upstream.Remote
	cas    store.CAS         // status-recording, over up.CAS()
	ac     store.ActionCache // status-recording, over up.ActionCache()
	assets asset.Index       // the remote's Remote Asset API
	rec    *outcomes

	mu      sync.Mutex
	roles   map[string]bool
	origins map[policy.Origin]bool
	push    bool
}

func newRemote(name string, cfg policy.Remote, up *upstream.Remote) *remote {
	rec := &outcomes{}
	return &remote{
		name: name, cfg: cfg, up: up, rec: rec,
		cas:     newStatusRecordingCAS(up.CAS(), rec),
		ac:      newStatusRecordingActionCache(up.ActionCache(), rec),
		assets:  asset.NewRemoteIndex(up.Assets()),
		roles:   map[string]bool{},
		origins: map[policy.Origin]bool{},
	}
}

// casUnreachable reports whether the remote's CAS breaker is open, for
// the fan-out's existence cache.
func (r *remote) casUnreachable() bool {
	return r.up.BreakerState(upstream.RoleCAS) == upstream.StateOpen
}

// use notes that an instance resolved r in role ("storage", "index" or
// "action-cache") with the given origin and push decision.
func (r *remote) use(role string, origin policy.Origin, push bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roles[role] = true
	r.origins[origin] = true
	r.push = r.push || push
}

// outcomes counts a remote's hits and misses; its health is kept per role
// by the upstream client (upstream.Remote.Health). Safe for concurrent use.
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

// isPush reports whether an instance made r a push target.
func (r *remote) isPush() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.push
}
