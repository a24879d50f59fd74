package fanout

import (
	"reflect"
	"sync"
	"time"

	"github.com/castd/castd/pkg/store"
)

// fillQueues holds the fill queue of each local store, shared by every
// fan-out built over it (one per instance name), so that the bound on
// pending fills and the drain at shutdown cover them all.
var fillQueues = struct {
	mu sync.Mutex
	m  map[store.CAS]*fillQueue
}{m: map[store.CAS]*fillQueue{}}

// fillQueueFor returns the fill queue of local, made with opts by the
// first fan-out over local. A local store that cannot be a map key gets
// a queue of its own, which DrainFills cannot reach.
func fillQueueFor(local store.CAS, opts Options) *fillQueue {
	if !reflect.ValueOf(local).Comparable() {
		return newFillQueue(local, opts)
	}
	fillQueues.mu.Lock()
	defer fillQueues.mu.Unlock()
	q, ok := fillQueues.m[local]
	if !ok {
		q = newFillQueue(local, opts)
		fillQueues.m[local] = q
	}
	return q
}

// DrainFills waits, for up to timeout, until every blob that fan-outs
// over local have answered from a remote but not yet stored in local is
// stored (or has failed), and makes any later fill inline. It returns
// how many were left when timeout passed; their Puts are then cancelled
// (each counted in castd_fanout_fill_failures_total and logged, and
// fetched again when next read). Call it at shutdown after the servers
// that read through the fan-outs have stopped and before local is
// closed. Safe for concurrent use; later calls return at once.
func DrainFills(local store.CAS, timeout time.Duration) int {
	if !reflect.ValueOf(local).Comparable() {
		return 0
	}
	fillQueues.mu.Lock()
	q := fillQueues.m[local]
	fillQueues.mu.Unlock()
	if q == nil {
		return 0
	}
	return q.drain(timeout)
}

// drain closes q to new fills and waits for the pending ones; see
// DrainFills.
func (q *fillQueue) drain(timeout time.Duration) int {
	q.mu.Lock()
	q.closed = true // no fill is added after this, so inflight.Wait is safe
	q.mu.Unlock()
	idle := make(chan struct{})
	go func() { q.inflight.Wait(); close(idle) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-idle:
		return 0
	case <-timer.C:
	}
	q.mu.Lock()
	left := q.blobs
	q.mu.Unlock()
	q.cancel()
	q.logger.Warn("fanout: shutdown left blobs unstored locally; they will be fetched again", "blobs", left)
	return left
}
