package fanout

import (
	"context"
	"log/slog"
	"sync"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// fillQueue stores in the local store, in the background, the blobs that
// batch reads have fetched, verified and already answered, so that a
// client does not wait for the local write (a second hash and a store
// commit). It is bounded (maxBlobs blobs and maxBytes bytes pending);
// when full, the read stores its blob inline instead (back-pressure,
// never a drop). Until a blob is stored, reads are served its pending
// bytes (lookup) or wait for it (wait). A failed Put is logged and
// counted; the blob is then simply not cached and a later read fetches
// it again. One fillQueue serves every fan-out over one local store (see
// fillQueueFor). Workers (at most workers) start when there is work and
// end when there is none. Safe for concurrent use.
type fillQueue struct {
	local    store.CAS
	maxBlobs int
	maxBytes int64
	workers  int
	logger   *slog.Logger
	metrics  *fillMetrics
	ctx      context.Context // the workers' Puts; cancelled by a drain that ran out of time
	cancel   context.CancelFunc

	mu       sync.Mutex
	pending  map[digest.Digest]*fill // queued or being stored: the latest fill of each digest
	queue    []*fill                 // not yet taken by a worker, oldest first
	blobs    int                     // fills queued or being stored
	bytes    int64                   // their size
	running  int                     // workers
	inflight sync.WaitGroup          // one per fill queued or being stored
	closed   bool                    // drained: every fill is stored inline
}

// fill is one blob to store. done is closed once it is stored (or has
// failed) and onStored has returned.
type fill struct {
	d        digest.Digest
	data     []byte
	onStored func() // called after a successful Put
	done     chan struct{}
}

func newFillQueue(local store.CAS, opts Options) *fillQueue {
	ctx, cancel := context.WithCancel(context.Background())
	return &fillQueue{
		local: local, maxBlobs: opts.FillMaxBlobs, maxBytes: opts.FillMaxBytes, workers: opts.FillWorkers,
		logger: opts.Logger, metrics: newFillMetrics(opts.Registerer), ctx: ctx, cancel: cancel,
		pending: map[digest.Digest]*fill{},
	}
}

// store has data (verified to hash to d) stored under d: queued when
// there is room, else inline on ctx before it returns. onStored runs
// after a successful Put, in either case.
func (q *fillQueue) store(ctx context.Context, d digest.Digest, data []byte, onStored func()) {
	f := &fill{d: d, data: data, onStored: onStored, done: make(chan struct{})}
	if q.add(f) {
		return
	}
	q.metrics.inline.Inc()
	q.put(ctx, f)
}

// add queues f and starts a worker if fewer than workers run; false when
// the queue is full or drained.
func (q *fillQueue) add(f *fill) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	size := int64(len(f.data))
	if q.closed || q.blobs >= q.maxBlobs || q.bytes+size > q.maxBytes {
		return false
	}
	q.pending[f.d] = f
	q.queue = append(q.queue, f)
	q.blobs++
	q.bytes += size
	q.inflight.Add(1)
	q.metrics.pending.Inc()
	if q.running < q.workers {
		q.running++
		go q.work()
	}
	return true
}

// work stores queued fills until none is left.
func (q *fillQueue) work() {
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running--
			q.mu.Unlock()
			return
		}
		f := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		q.put(q.ctx, f)
		q.remove(f)
	}
}

// put stores f; a failure is logged and counted, never returned.
func (q *fillQueue) put(ctx context.Context, f *fill) {
	err := store.PutBytes(ctx, q.local, f.d, f.data)
	if err != nil {
		q.metrics.failures.Inc()
		q.logger.Warn("fanout: storing a fetched blob locally failed; it will be fetched again", "digest", f.d.String(), "err", err)
		return
	}
	if f.onStored != nil {
		f.onStored()
	}
}

// remove ends queued fill f: it is no longer pending, and its waiters
// are woken.
func (q *fillQueue) remove(f *fill) {
	q.mu.Lock()
	if q.pending[f.d] == f {
		delete(q.pending, f.d)
	}
	q.blobs--
	q.bytes -= int64(len(f.data))
	q.metrics.pending.Dec()
	q.mu.Unlock()
	close(f.done)
	q.inflight.Done()
}

// lookup returns the bytes of d while a fill of d is pending.
func (q *fillQueue) lookup(d digest.Digest) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if f, ok := q.pending[d]; ok {
		return f.data, true
	}
	return nil, false
}

// wait returns once no fill of d is pending (it may have failed), or
// ctx has ended.
func (q *fillQueue) wait(ctx context.Context, d digest.Digest) {
	for {
		q.mu.Lock()
		f, ok := q.pending[d]
		q.mu.Unlock()
		if !ok {
			return
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return
		}
	}
}
