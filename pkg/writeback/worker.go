package writeback

import (
	"errors"
	"time"

	"github.com/castd/castd/internal/clock"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// work pushes rq's entries until the queue drains on Close or the drain
// time is over.
func (q *Queue) work(rq *remoteQueue) {
	for {
		batch, ok := q.next(rq)
		if !ok {
			return
		}
		results := q.push(q.ctx, rq.sink, batch)
		q.finish(rq, batch, results)
	}
}

// next waits for entries of rq that are due and returns up to Batch of
// them (blobs first, so a batch's action results find their blobs pushed),
// marked in flight. It returns false when the drain time is over, or when
// the queue is draining and rq has nothing it may push (empty, or only
// entries of parked roles).
func (q *Queue) next(rq *remoteQueue) ([]*Entry, bool) {
	for q.ctx.Err() == nil {
		q.mu.Lock()
		batch, idle, earliest := q.due(rq, q.opts.Clock.Now())
		for _, e := range batch {
			e.inflight = true
		}
		q.mu.Unlock()
		if len(batch) > 0 {
			return batch, true
		}
		if !q.wait(rq, idle, earliest) {
			return nil, false
		}
	}
	return nil, false
}

// due returns up to Batch entries of rq whose retry time has come, whether
// rq has nothing it may push at all (idle), and the earliest retry time of
// those not yet due. Entries in flight and those of parked roles are
// skipped. The caller holds mu.
func (q *Queue) due(rq *remoteQueue, now time.Time) (batch []*Entry, idle bool, earliest time.Time) {
	idle = true
	for _, e := range rq.entries {
		if e.inflight || rq.blocked(e) {
			continue
		}
		idle = false
		if e.NextTry.After(now) {
			if earliest.IsZero() || e.NextTry.Before(earliest) {
				earliest = e.NextTry
			}
			continue
		}
		if batch = append(batch, e); len(batch) == q.opts.Batch {
			break
		}
	}
	return batch, idle, earliest
}

// wait blocks until rq may have due entries; false means stop.
func (q *Queue) wait(rq *remoteQueue, idle bool, earliest time.Time) bool {
	var timer <-chan struct{}
	if !earliest.IsZero() {
		due, t := clock.After(q.opts.Clock, earliest.Sub(q.opts.Clock.Now()))
		defer t.Stop()
		timer = due
	}
	drain := q.drain
	select {
	case <-drain:
		if idle {
			return false
		}
		drain = nil
	default:
	}
	select {
	case <-rq.wake:
	case <-timer:
	case <-drain:
		return !idle
	case <-q.ctx.Done():
		return false
	}
	return q.ctx.Err() == nil
}

// finish removes pushed (and locally lost) entries, parks the roles a
// remote refused for good and reschedules the others with backoff. After
// Close it changes nothing: the entries stay on disk for the next start.
func (q *Queue) finish(rq *remoteQueue, batch []*Entry, results []error) {
	done := map[*Entry]bool{}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	for i, e := range batch {
		e.inflight = false
		err := results[i]
		var perm permanentError
		switch {
		case err == nil:
			q.succeeded(rq)
			done[e] = true
		case errors.Is(err, errSkipped):
			// Parked with its role by an earlier refusal in this batch.
		case store.IsUnsupportedFunction(err):
			q.unsupported(rq, e, err)
			done[e] = true
		case errors.As(err, &perm):
			q.failed(rq, err)
			q.opts.Logger.Warn("write-back: giving up on an entry", "remote", rq.name, "kind", e.Kind.String(), "digest", e.Digest.String(), "err", err)
			done[e] = true
		case q.ctx.Err() != nil:
			// Shutting down: the entry stays persisted for the next start.
		default:
			q.failed(rq, err)
			if role, code, ok := refusal(err); ok {
				q.park(rq, role, code, err)
				continue
			}
			q.retrying(rq, e, err)
			e.Attempts++
			e.NextTry = q.opts.Clock.Now().Add(q.opts.backoff(e.Attempts))
		}
	}
	q.remove(rq, done)
}

// succeeded counts a pushed entry and logs the end of a failing spell; the
// caller holds mu.
func (q *Queue) succeeded(rq *remoteQueue) {
	rq.completed++
	q.metrics.completed.WithLabelValues(rq.name).Inc()
	if rq.failing {
		rq.failing = false
		q.opts.Logger.Info("write-back: remote takes pushes again", "remote", rq.name)
	}
}

// unsupported drops e, whose digest function the remote does not take
// (not in its Capabilities): no retry would change that, and the remote's
// other pushes are not held up. It is counted and logged once per remote
// and function; the caller holds mu.
func (q *Queue) unsupported(rq *remoteQueue, e *Entry, err error) {
	q.metrics.dropped.WithLabelValues(rq.name, DropUnsupportedFunction).Inc()
	var u *store.UnsupportedFunctionError
	errors.As(err, &u)
	if rq.unsupported[u.Func] {
		return
	}
	rq.unsupported[u.Func] = true
	q.opts.Logger.Warn("write-back: the remote does not take this digest function; its pushes of it are dropped",
		"remote", rq.name, "digest_function", u.Func.String(), "kind", e.Kind.String(), "digest", e.Digest.String())
}

// failed counts a failed attempt; the caller holds mu.
func (q *Queue) failed(rq *remoteQueue, err error) {
	rq.failures++
	rq.lastError = message(err)
	q.metrics.failures.WithLabelValues(rq.name).Inc()
}

// retrying logs the first transient failure of a spell, so a remote that
// keeps failing is visible without a line per retry; the caller holds mu.
func (q *Queue) retrying(rq *remoteQueue, e *Entry, err error) {
	if !rq.failing {
		rq.failing = true
		q.opts.Logger.Warn("write-back: push failed; retrying with backoff", "remote", rq.name, "kind", e.Kind.String(), "code", status.Code(err).String(), "err", rq.lastError)
	}
}

// remove deletes done entries from rq and from disk and releases their
// holds; the caller holds mu.
func (q *Queue) remove(rq *remoteQueue, done map[*Entry]bool) {
	if len(done) == 0 {
		return
	}
	kept := rq.entries[:0]
	for _, e := range rq.entries {
		if !done[e] {
			kept = append(kept, e)
			continue
		}
		if err := q.rec.Delete(seqKey(e.seq)); err != nil {
			q.opts.Logger.Warn("write-back: deleting a finished record", "remote", rq.name, "err", err)
		}
		delete(q.ids, e.id())
		q.release(e)
		q.total--
	}
	clear(rq.entries[len(kept):])
	rq.entries = kept
	q.signalRoom()
}

// permanentError marks a push that can never succeed (the local copy is
// gone, or the remote has no action cache); the entry is dropped with a
// warning instead of retried forever.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
