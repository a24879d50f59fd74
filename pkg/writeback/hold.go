package writeback

import "github.com/castd/castd/pkg/digest"

// held is the blob whose eviction would make e impossible to push: the
// blob itself, or an asset's content root. Action results are never
// evicted, so they hold nothing.
func held(e *Entry) (digest.Digest, bool) {
	switch e.Kind {
	case KindBlob, KindAsset:
		return e.Digest, true
	}
	return digest.Digest{}, false
}

// hold takes e's eviction hold, if any.
func (q *Queue) hold(e *Entry) {
	if d, ok := held(e); ok && q.holder != nil {
		q.holder.Hold(d)
	}
}

// release gives e's hold back.
func (q *Queue) release(e *Entry) {
	if d, ok := held(e); ok && q.holder != nil {
		q.holder.Release(d)
	}
}

// holdBlob holds d for the span of a write that is then enqueued (the
// enqueue takes its own hold), so that no eviction slips in between the
// write and the enqueue. It returns the release.
func (q *Queue) holdBlob(d digest.Digest) func() {
	if q.holder == nil {
		return func() {}
	}
	q.holder.Hold(d)
	return func() { q.holder.Release(d) }
}
