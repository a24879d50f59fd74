package execution

import (
	"sync"
	"time"
)

// registry indexes operations by name (running, and finished ones for a
// retention period, bounded in count) and running shared operations by
// their singleflight key. Safe for concurrent use.
type registry struct {
	now       func() time.Time
	retention time.Duration
	max       int

	mu       sync.Mutex
	byName   map[string]*operation
	inflight map[string]*operation
	finished []*operation // in finishing order, oldest first
}

func newRegistry(now func() time.Time, retention time.Duration, max int) *registry {
	return &registry{now: now, retention: retention, max: max,
		byName: map[string]*operation{}, inflight: map[string]*operation{}}
}

// get returns the operation called name, or nil if it is unknown or was
// forgotten.
func (r *registry) get(name string) *operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prune()
	return r.byName[name]
}

// running returns the shared operation running under key, or nil.
func (r *registry) running(key string) *operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[key]
}

// start registers o, unless o is shared and an operation with its key is
// already running: then that one is returned and o is not registered.
func (r *registry) start(o *operation) (existing *operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.key != "" {
		if e := r.inflight[o.key]; e != nil {
			return e
		}
		r.inflight[o.key] = o
	}
	r.byName[o.name] = o
	return nil
}

// release stops new identical requests from joining o. It is called before
// o finishes, so a request that arrives after a caller saw the end starts
// afresh (a failed result must not be handed to it).
func (r *registry) release(o *operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.key != "" && r.inflight[o.key] == o {
		delete(r.inflight, o.key)
	}
}

// done retains the finished o for GetOperation and WaitExecution.
func (r *registry) done(o *operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName[o.name] = o
	r.finished = append(r.finished, o)
	r.prune()
}

// prune forgets finished operations past retention or beyond the bound.
func (r *registry) prune() {
	cutoff := r.now().Add(-r.retention)
	n := 0
	for n < len(r.finished) && (len(r.finished)-n > r.max || r.finished[n].finishedAt.Before(cutoff)) {
		delete(r.byName, r.finished[n].name)
		r.finished[n] = nil
		n++
	}
	if n > 0 {
		r.finished = r.finished[n:]
	}
}
