package store

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

// commitReq is the index writes of one Put, committed all or nothing.
type commitReq struct {
	kvs  [2]kv
	n    int
	done chan error
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

func newCommitter(db *badger.DB) *committer {
	return &committer{db: db, wake: make(chan struct{}, 1)}
}

// commit writes the given key/value pairs (at most two) atomically with
// the current group and returns once they are durable as far as badger
// goes (see Options.SyncWrites).
func (c *committer) commit(kvs ...kv) error {
	r := commitReqPool.Get().(*commitReq)
	r.n = copy(r.kvs[:], kvs)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		commitReqPool.Put(r)
		return badger.ErrDBClosed
	}
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	err := <-r.done
	r.kvs = [2]kv{}
	commitReqPool.Put(r)
	return err
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

// write commits one group in one transaction.
func (c *committer) write(group []*commitReq) error {
	if hook := c.beforeCommit.Load(); hook != nil {
		if err := (*hook)(len(group)); err != nil {
			return err
		}
	}
	txn := c.db.NewTransaction(true)
	defer txn.Discard()
	for _, r := range group {
		for _, e := range r.kvs[:r.n] {
			if err := txn.Set(e.key, e.val); err != nil {
				return err
			}
		}
	}
	return txn.Commit()
}
