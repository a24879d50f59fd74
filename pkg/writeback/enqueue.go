package writeback

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
)

// Target is a remote to push to, as the configuration resolved it.
type Target struct {
	// Name is the name the remote was registered under.
	Name string
	// Origin is where the remote was configured; OriginProject is refused.
	Origin policy.Origin
}

// Sink is where one remote's pushes go.
type Sink struct {
	// CAS receives blobs.
	CAS store.CAS
	// ActionCache receives action results; nil when the remote takes none.
	ActionCache store.ActionCache
	// Assets receives Remote Asset associations; nil when it takes none.
	Assets asset.Index
}

// Register makes name a push target. Register before Start; a remote
// registered after Start gets its worker at once.
func (q *Queue) Register(name string, s Sink) {
	q.mu.Lock()
	defer q.mu.Unlock()
	rq := q.remote(name)
	fresh := rq.sink == nil
	rq.sink = &s
	if fresh && q.started {
		q.startWorker(rq)
	}
}

// Enqueue records a push of (kind, d) to each target and returns once the
// entries are persisted; an identical pending push is not duplicated.
// instance names the local action cache for KindActionResult. When the
// queue is full it waits for room up to Options.FullWait or until ctx ends,
// then fails with RESOURCE_EXHAUSTED. A target whose origin is a project
// recommendation, or that was never registered, is refused with INTERNAL:
// that is a wiring bug, and nothing is pushed to such a remote.
func (q *Queue) Enqueue(ctx context.Context, kind Kind, d digest.Digest, instance string, targets []Target) error {
	return q.enqueue(ctx, targets, func() *Entry { return &Entry{Kind: kind, Digest: d, Instance: instance} })
}

// EnqueueAsset is Enqueue for a Remote Asset association: the content ref
// points to (the blob, or every Directory and file of the tree) is pushed
// first, then the association.
func (q *Queue) EnqueueAsset(ctx context.Context, a asset.Asset, ref asset.Ref, targets []Target) error {
	saved := saveAsset(a, ref)
	return q.enqueue(ctx, targets, func() *Entry { return &Entry{Kind: KindAsset, Digest: ref.Digest, Asset: saved} })
}

// enqueue records one entry made by mk per target.
func (q *Queue) enqueue(ctx context.Context, targets []Target, mk func() *Entry) error {
	if len(targets) == 0 {
		return nil
	}
	now := q.opts.Clock.Now()
	var es []*Entry
	for _, t := range targets {
		if err := q.check(t); err != nil {
			return err
		}
		e := mk()
		e.Remote, e.Enqueued = t.Name, now
		es = append(es, e)
	}
	es, err := q.reserve(ctx, es)
	if err != nil {
		return err
	}
	return q.persist(es)
}

// check refuses targets the queue must never push to.
func (q *Queue) check(t Target) error {
	if t.Origin == policy.OriginProject {
		return status.Errorf(codes.Internal, "write-back: refusing to queue a push to project-recommended remote %s", t.Name)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if rq, ok := q.remotes[t.Name]; !ok || rq.sink == nil {
		return status.Errorf(codes.Internal, "write-back: remote %s is not registered as a push target", t.Name)
	}
	return nil
}

// reserve assigns sequence numbers to the entries not already pending,
// waiting for room. The entries are not yet visible to workers.
func (q *Queue) reserve(ctx context.Context, es []*Entry) ([]*Entry, error) {
	var timeout <-chan struct{}
	for {
		q.mu.Lock()
		fresh := es[:0:0]
		for _, e := range es {
			if !q.ids[e.id()] {
				fresh = append(fresh, e)
			}
		}
		if len(fresh) == 0 || q.total+len(fresh) <= q.opts.MaxEntries {
			for _, e := range fresh {
				q.seq++
				e.seq = q.seq
				q.ids[e.id()] = true
				q.hold(e)
				q.total++
			}
			q.mu.Unlock()
			return fresh, nil
		}
		room := q.room
		q.mu.Unlock()
		if timeout == nil {
			due, t := clock.After(q.opts.Clock, q.opts.FullWait)
			defer t.Stop()
			timeout = due
		}
		select {
		case <-room:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-timeout:
			return nil, status.Errorf(codes.ResourceExhausted, "write-back queue full (%d entries): the push remotes are not keeping up", q.opts.MaxEntries)
		}
	}
}

// persist writes the reserved entries to disk, then hands them to the
// workers. On a write failure the reservation is undone.
func (q *Queue) persist(es []*Entry) error {
	for i, e := range es {
		v, err := encodeEntry(e)
		if err == nil {
			err = q.rec.Put(seqKey(e.seq), v)
		}
		if err != nil {
			q.publish(es[:i])
			q.unreserve(es[i:])
			return status.Errorf(codes.Internal, "write-back: persisting a %s push to %s: %v", e.Kind, e.Remote, err)
		}
	}
	q.publish(es)
	return nil
}

// publish turns reserved, persisted entries into pending ones.
func (q *Queue) publish(es []*Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range es {
		delete(q.ids, e.id())
		q.total--
		q.add(e)
	}
}

func (q *Queue) unreserve(es []*Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range es {
		delete(q.ids, e.id())
		q.release(e)
		q.total--
	}
	q.signalRoom()
}

// signalRoom wakes writers waiting for room; the caller holds mu.
func (q *Queue) signalRoom() {
	close(q.room)
	q.room = make(chan struct{})
}
