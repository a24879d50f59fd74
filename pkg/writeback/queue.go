package writeback

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// Queue is the durable write-back queue over one store's Records. Create
// it with Open, Register every push target, then Start. Safe for
// concurrent use.
type Queue struct {
	rec     *disk.Records
	local   store.CAS
	holder  store.Holder // local's eviction holds; nil when local has none
	localAC func(instance string) store.ActionCache
	opts    Options
	metrics *metrics

	mu      sync.Mutex
	seq     uint64
	remotes map[string]*remoteQueue
	ids     map[identity]bool
	total   int
	room    chan struct{} // closed and replaced when entries leave
	started bool
	closed  bool // Close returned: no more record changes

	ctx       context.Context // cancelled when the drain time is over
	cancel    context.CancelFunc
	drain     chan struct{} // closed by Close: workers stop once empty
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// remoteQueue is one target's pending entries, in enqueue order.
type remoteQueue struct {
	name    string
	sink    *Sink // nil until Register
	entries []*Entry
	wake    chan struct{} // capacity 1

	failures, completed uint64
	lastError           string
	failing             bool             // the last attempt failed transiently
	parked              map[Role]parking // roles the remote refused for good
	// unsupported are the digest functions the remote was found not to
	// take, each logged once.
	unsupported map[digest.Function]bool
}

// Open loads the entries persisted in rec (a previous run's pending
// pushes). local and localAC are where pushed content is read from. When
// local is a store.Holder (the local store is), every queued blob and the
// content root of every queued asset is held against eviction until its
// push is done; Open takes the holds of the loaded entries again. Action
// results need no hold: the local store never evicts them. Cost: one scan
// of the namespace.
func Open(rec *disk.Records, local store.CAS, localAC func(instance string) store.ActionCache, opts Options) (*Queue, error) {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		rec: rec, local: local, localAC: localAC, opts: opts,
		remotes: map[string]*remoteQueue{}, ids: map[identity]bool{},
		room: make(chan struct{}), ctx: ctx, cancel: cancel, drain: make(chan struct{}),
	}
	q.holder, _ = local.(store.Holder)
	q.metrics = newMetrics(opts.Registerer, q)
	err := rec.Scan(func(key, value []byte) error {
		e, err := decodeEntry(key, value)
		if err != nil {
			opts.Logger.Warn("write-back: skipping an unreadable record", "err", err)
			return nil
		}
		q.seq = max(q.seq, e.seq)
		if q.add(e) {
			q.hold(e)
		}
		return nil
	})
	if err != nil {
		cancel()
		return nil, status.Errorf(codes.Internal, "write-back: loading the queue: %v", err)
	}
	return q, nil
}

// remote returns the queue of name, creating it; the caller holds mu.
func (q *Queue) remote(name string) *remoteQueue {
	rq, ok := q.remotes[name]
	if !ok {
		rq = &remoteQueue{name: name, wake: make(chan struct{}, 1), parked: map[Role]parking{}, unsupported: map[digest.Function]bool{}}
		q.remotes[name] = rq
	}
	return rq
}

// add appends e unless the same push is pending; the caller holds mu (or
// is Open). It reports whether e was added.
func (q *Queue) add(e *Entry) bool {
	if q.ids[e.id()] {
		return false
	}
	q.ids[e.id()] = true
	rq := q.remote(e.Remote)
	rq.entries = append(rq.entries, e)
	q.total++
	select {
	case rq.wake <- struct{}{}:
	default:
	}
	return true
}

// Start launches one worker per registered remote. Entries persisted for a
// remote that is no longer registered (the configuration changed) are
// deleted with a warning naming the remote and the count.
func (q *Queue) Start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.started = true
	for name, rq := range q.remotes {
		if rq.sink == nil {
			q.forgetRemote(rq)
			delete(q.remotes, name)
			continue
		}
		q.startWorker(rq)
	}
}

func (q *Queue) startWorker(rq *remoteQueue) {
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.work(rq)
	}()
}

// forgetRemote drops the entries of a remote no longer configured for
// push; the caller holds mu.
func (q *Queue) forgetRemote(rq *remoteQueue) {
	q.opts.Logger.Warn("write-back: remote is no longer a push target; dropping its pending entries",
		"remote", rq.name, "entries", len(rq.entries))
	for _, e := range rq.entries {
		if err := q.rec.Delete(seqKey(e.seq)); err != nil {
			q.opts.Logger.Warn("write-back: deleting a record", "remote", rq.name, "err", err)
		}
		delete(q.ids, e.id())
		q.release(e)
		q.total--
	}
}

// closeGrace is how long Close waits, after the drain time, for pushes
// to return once cancelled. A push that ignores cancellation is left
// behind: its result is dropped and its entry stays on disk.
const closeGrace = time.Second

// Close is CloseContext with a drain time of timeout.
func (q *Queue) Close(timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return q.CloseContext(ctx)
}

// CloseContext stops taking new work once the queues have nothing left to
// push (entries of parked roles do not count) or ctx is done, whichever is
// first: ctx carries the daemon's shutdown deadline, and is cancelled early
// when the operator insists (a second SIGTERM). When ctx is done it cancels
// the pushes in flight and waits at most closeGrace for them, so it returns
// by ctx's deadline plus closeGrace whatever the remotes do. Entries not
// pushed stay persisted for the next start. It returns the number of
// entries left. A second call only counts them.
func (q *Queue) CloseContext(ctx context.Context) int {
	q.closeOnce.Do(func() { q.shutdown(ctx) })
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// shutdown drains and stops the workers (see CloseContext).
func (q *Queue) shutdown(ctx context.Context) {
	close(q.drain)
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.cancel()
		q.awaitCancelled(done)
	}
	q.cancel()
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// awaitCancelled waits up to closeGrace for the workers after cancel.
func (q *Queue) awaitCancelled(done <-chan struct{}) {
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		q.opts.Logger.Warn("write-back: a push ignored cancellation at shutdown; its entry stays queued for the next start")
	}
}
