package disk

import (
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// maxGroup bounds the writes one group commit carries, far below badger's
// transaction limits (a few thousand entries of this size fit easily).
const maxGroup = 512

// kv is one badger key and value to set.
type kv struct{ key, val []byte }

// commitReq is the writes of one Put, committed all or nothing: either
// index entries (kvs) or a small blob (blob), which goes to a pack first
// and is then indexed under k with e, its place in the pack filled in.
// With publish, a committed blob also enters the in-memory index before
// the Put hears back, so no moment exists when a pack holds a committed
// blob that its live bytes do not count (compaction relies on that).
type commitReq struct {
	kvs     [2]kv
	n       int
	blob    []byte
	k       blobKey
	e       entry
	publish bool
	roll    bool // seal the active pack (if it holds anything)
	done    chan error
}

var commitReqPool = sync.Pool{New: func() any { return &commitReq{done: make(chan error, 1)} }}

// committer is group commit for index writes: concurrent Puts queue their
// entries and one goroutine writes everything queued in one badger
// transaction. A badger transaction per Put costs a commit timestamp, a
// wait for every earlier commit to be applied and a round trip to badger's
// writer; grouped, those are paid once per group. Each Put still returns
// only after its own entries are committed, and a group that fails fails
// every Put in it (nothing of it is written). Safe for concurrent use.
type committer struct {
	db     *badger.DB
	packs  *packSet
	ix     *index
	mu     sync.Mutex
	queue  []*commitReq
	closed bool
	wake   chan struct{} // capacity 1: "the queue is not empty"
	// beforeCommit, when set (tests only), runs before each group is
	// written with the group's size; an error fails the group.
	beforeCommit atomic.Pointer[func(n int) error]
}

// queued is how many Puts wait for the next group (tests only).
func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func newCommitter(db *badger.DB, packs *packSet, ix *index) *committer {
	return &committer{db: db, packs: packs, ix: ix, wake: make(chan struct{}, 1)}
}

// commit writes the given key/value pairs (at most two) atomically with
// the current group and returns once they are durable as far as badger
// goes (see Options.SyncWrites).
func (c *committer) commit(kvs ...kv) error {
	r := commitReqPool.Get().(*commitReq)
	r.n = copy(r.kvs[:], kvs)
	err := c.wait(c.enqueue(r), r)
	r.kvs = [2]kv{}
	commitReqPool.Put(r)
	return err
}

// commitBlob appends data to a pack and indexes it under k with e (whose
// tick and CRC the caller sets), in the current group, and publishes the
// caller's claim of k. It returns e with the blob's place in the pack.
// data is not retained.
func (c *committer) commitBlob(k blobKey, data []byte, e entry) (entry, error) {
	r := commitReqPool.Get().(*commitReq)
	r.blob, r.k, r.e, r.publish = data, k, e, true
	err := c.wait(c.enqueue(r), r)
	e = r.e
	r.blob, r.e, r.publish = nil, entry{}, false
	commitReqPool.Put(r)
	return e, err
}

// commitBlobs writes many blobs at once without publishing them
// (compaction): it queues them all, then waits for each. rs are the
// caller's, not pooled.
func (c *committer) commitBlobs(rs []*commitReq) error {
	for _, r := range rs {
		r.done = make(chan error, 1)
	}
	err := c.enqueue(rs...)
	for _, r := range rs {
		if werr := c.wait(err, r); err == nil && werr != nil {
			err = werr
		}
	}
	return err
}

// sealActive seals the active pack, so that compaction can reclaim its
// garbage, and starts a new one.
func (c *committer) sealActive() error {
	return c.commitBlobs([]*commitReq{{roll: true}})
}

// enqueue adds rs to the next group, or fails if the committer is closed.
func (c *committer) enqueue(rs ...*commitReq) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return badger.ErrDBClosed
	}
	c.queue = append(c.queue, rs...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// wait returns r's outcome once its group is written, or the enqueue
// error.
func (c *committer) wait(enqueueErr error, r *commitReq) error {
	if enqueueErr != nil {
		return enqueueErr
	}
	return <-r.done
}

// run commits queued groups until stop is closed, then commits what is
// still queued and refuses further writes.
func (c *committer) run(stop <-chan struct{}) {
	for {
		select {
		case <-c.wake:
			c.drain(false)
		case <-stop:
			c.drain(true)
			return
		}
	}
}

// drain commits everything queued, group by group; if last, it also closes
// the queue atomically with taking its final contents.
func (c *committer) drain(last bool) {
	for {
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		if len(q) == 0 && last {
			c.closed = true
		}
		c.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for len(q) > 0 {
			n := min(len(q), maxGroup)
			err := c.write(q[:n])
			for _, r := range q[:n] {
				r.done <- err
			}
			q = q[n:]
		}
	}
}

// write commits one group: its blobs to a pack, then every index entry in
// one transaction.
func (c *committer) write(group []*commitReq) error {
	if hook := c.beforeCommit.Load(); hook != nil {
		if err := (*hook)(len(group)); err != nil {
			return err
		}
	}
	if err := c.packs.place(group); err != nil {
		return err
	}
	txn := c.db.NewTransaction(true)
	defer txn.Discard()
	for _, r := range group {
		if r.blob != nil {
			if err := txn.Set(r.k.dbKey('m'), encodeMeta(r.e, r.e.tick)); err != nil {
				return err
			}
			continue
		}
		for _, e := range r.kvs[:r.n] {
			if err := txn.Set(e.key, e.val); err != nil {
				return err
			}
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	for _, r := range group {
		if r.publish {
			c.ix.publish(r.k, r.e)
		}
	}
	return nil
}
