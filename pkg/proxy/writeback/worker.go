package writeback

import (
	"errors"
	"time"

	"google.golang.org/grpc/status"
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
// them (blobs first, so a batch's action results find their blobs pushed).
// It returns false when the queue is draining and rq is empty, or when
// the drain time is over.
func (q *Queue) next(rq *remoteQueue) ([]*Entry, bool) {
	for {
		q.mu.Lock()
		now := time.Now()
		var batch []*Entry
		var earliest time.Time
		for _, e := range rq.entries {
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
		empty := len(rq.entries) == 0
		q.mu.Unlock()
		if len(batch) > 0 {
			return batch, true
		}
		if !q.wait(rq, empty, earliest) {
			return nil, false
		}
	}
}

// wait blocks until rq may have due entries; false means stop.
func (q *Queue) wait(rq *remoteQueue, empty bool, earliest time.Time) bool {
	var timer <-chan time.Time
	if !earliest.IsZero() {
		t := time.NewTimer(time.Until(earliest))
		defer t.Stop()
		timer = t.C
	}
	drain := q.drain
	select {
	case <-drain:
		if empty {
			return false
		}
		drain = nil
	default:
	}
	select {
	case <-rq.wake:
	case <-timer:
	case <-drain:
		return !empty
	case <-q.ctx.Done():
		return false
	}
	return q.ctx.Err() == nil
}

// finish removes pushed (and permanently failed) entries and reschedules
// the others with backoff.
func (q *Queue) finish(rq *remoteQueue, batch []*Entry, results []error) {
	done := map[*Entry]bool{}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, e := range batch {
		err := results[i]
		var perm permanentError
		switch {
		case err == nil:
			rq.completed++
			q.metrics.completed.WithLabelValues(rq.name).Inc()
			done[e] = true
		case errors.As(err, &perm):
			q.failed(rq, e, err)
			q.opts.Logger.Warn("write-back: giving up on an entry", "remote", rq.name, "kind", e.Kind.String(), "digest", e.Digest.String(), "err", err)
			done[e] = true
		case q.ctx.Err() != nil:
			// Shutting down: the entry stays persisted for the next start.
		default:
			q.failed(rq, e, err)
			e.Attempts++
			e.NextTry = time.Now().Add(q.opts.backoff(e.Attempts))
		}
	}
	q.remove(rq, done)
}

func (q *Queue) failed(rq *remoteQueue, e *Entry, err error) {
	rq.failures++
	rq.lastError = status.Convert(err).Message()
	q.metrics.failures.WithLabelValues(rq.name).Inc()
}

// remove deletes done entries from rq and from disk; the caller holds mu.
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
