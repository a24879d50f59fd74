package disk

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/castd/castd/pkg/digest"
)

// blobKey is the compact in-memory form of a digest (40 bytes, no pointers,
// so a million of them cost the garbage collector nothing).
type blobKey struct {
	hash [32]byte
	size int64
}

// keyOf converts a validated digest; ok is false for a malformed hash.
func keyOf(d digest.Digest) (k blobKey, ok bool) {
	if len(d.Hash) != 64 {
		return k, false
	}
	if _, err := hex.Decode(k.hash[:], []byte(d.Hash)); err != nil {
		return k, false
	}
	k.size = d.Size
	return k, true
}

func (k blobKey) digest() digest.Digest {
	return digest.Digest{Hash: hex.EncodeToString(k.hash[:]), Size: k.size}
}

// fileName is the blob's name under dir/cas/<first hash byte>/.
func (k blobKey) fileName() string {
	return hex.EncodeToString(k.hash[:]) + "-" + strconv.FormatInt(k.size, 10)
}

// dbKey is prefix, hash, big-endian size: 41 bytes.
func (k blobKey) dbKey(prefix byte) []byte {
	b := make([]byte, 41)
	b[0] = prefix
	copy(b[1:], k.hash[:])
	binary.BigEndian.PutUint64(b[33:], uint64(k.size))
	return b
}

func keyFromDB(b []byte) (blobKey, bool) {
	var k blobKey
	if len(b) != 41 {
		return k, false
	}
	copy(k.hash[:], b[1:33])
	k.size = int64(binary.BigEndian.Uint64(b[33:]))
	return k, k.size >= 0
}

// entry is what the index knows about a stored blob. A small blob
// (inline) lives in pack file pack at offset off; in stores written before
// pack files, a small blob with pack 0 lives in badger under 'd'. A blob
// that is not inline is a file under dir/cas; chunked says badger holds a
// CRC-32C per chunk of it under 'c' (files stored before chunk sums have
// only crc).
type entry struct {
	tick    uint64 // last use; larger is more recent
	crc     uint32 // CRC-32C of the content, checked on read
	pins    int32  // open readers
	pack    uint32
	off     uint32
	inline  bool
	chunked bool
}

// packed reports whether the blob's bytes are in a pack file.
func (e entry) packed() bool { return e.inline && e.pack != 0 }

// shard holds the blobs whose hash starts with one byte (the same split as
// the dir/cas fan-out, so reconciliation works shard by shard).
type shard struct {
	mu   sync.Mutex
	m    map[blobKey]entry
	busy map[blobKey]chan struct{} // being written or deleted; closed when done
	gone map[blobKey]struct{}      // deleted while the index was loading
	held map[blobKey]int32         // holds against eviction (see Local.Hold), stored or not
}

// index is the in-memory set of stored blobs with pins and recency.
type index struct {
	shards  [256]shard
	clock   atomic.Uint64
	loading atomic.Bool
	bytes   atomic.Int64
	objects atomic.Int64
	held    atomic.Int64 // bytes of the distinct held keys
	// accountPack, when set, is told of every packed blob that enters
	// (+size) or leaves (-size) the index, so each pack knows its live
	// bytes. Called with a shard lock held.
	accountPack func(pack uint32, delta int64)
}

// added and removed keep the totals (and a pack's live bytes) in step with
// the entries; the caller holds k's shard lock.
func (ix *index) added(k blobKey, e entry) {
	ix.bytes.Add(k.size)
	ix.objects.Add(1)
	if e.packed() && ix.accountPack != nil {
		ix.accountPack(e.pack, k.size)
	}
}

func (ix *index) removed(k blobKey, e entry) {
	ix.bytes.Add(-k.size)
	ix.objects.Add(-1)
	if e.packed() && ix.accountPack != nil {
		ix.accountPack(e.pack, -k.size)
	}
}

// relocate points k, if it is still in pack from, at its new place in
// another pack (compaction). It reports whether k was moved.
func (ix *index) relocate(k blobKey, from uint32, to entry) bool {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok || !e.packed() || e.pack != from {
		return false
	}
	ix.removed(k, e)
	e.pack, e.off = to.pack, to.off
	s.m[k] = e
	ix.added(k, e)
	return true
}

func newIndex() *index {
	ix := &index{}
	for i := range ix.shards {
		ix.shards[i] = shard{m: map[blobKey]entry{}, busy: map[blobKey]chan struct{}{}, gone: map[blobKey]struct{}{}, held: map[blobKey]int32{}}
	}
	// Ticks start at wall-clock nanoseconds, so they exceed the ticks a
	// previous process persisted.
	ix.clock.Store(uint64(time.Now().UnixNano()))
	ix.loading.Store(true)
	return ix
}

// pinnedBytes is the size of the blobs open readers hold (a full scan).
func (ix *index) pinnedBytes() int64 {
	var n int64
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.pins > 0 {
				n += k.size
			}
		}
		s.mu.Unlock()
	}
	return n
}

func (ix *index) shard(k blobKey) *shard { return &ix.shards[k.hash[0]] }

// touch marks k used and reports whether it is stored.
func (ix *index) touch(k blobKey) bool {
	s := ix.shard(k)
	s.mu.Lock()
	e, ok := s.m[k]
	if ok {
		e.tick = ix.clock.Add(1)
		s.m[k] = e
	}
	s.mu.Unlock()
	return ok
}

// pin marks k used and holds it against eviction until unpin.
func (ix *index) pin(k blobKey) (entry, bool) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if ok {
		e.tick = ix.clock.Add(1)
		e.pins++
		s.m[k] = e
	}
	return e, ok
}

// peek returns k's entry without marking it used.
func (ix *index) peek(k blobKey) (entry, bool) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	return e, ok
}

func (ix *index) unpin(k blobKey) {
	s := ix.shard(k)
	s.mu.Lock()
	if e, ok := s.m[k]; ok && e.pins > 0 {
		e.pins--
		s.m[k] = e
	}
	s.mu.Unlock()
}

// claimState is the outcome of claim.
type claimState int

const (
	claimed claimState = iota // caller now owns k and must publish or release it
	present                   // k is stored (and was touched)
	waiting                   // someone else owns k; wait on the channel and retry
)

// claim gives the caller exclusive ownership of an absent k.
func (ix *index) claim(k blobKey) (claimState, <-chan struct{}) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok {
		e.tick = ix.clock.Add(1)
		s.m[k] = e
		return present, nil
	}
	if ch, ok := s.busy[k]; ok {
		return waiting, ch
	}
	s.busy[k] = make(chan struct{})
	return claimed, nil
}

// publish makes a claimed k visible with e and ends the claim.
func (ix *index) publish(k blobKey, e entry) {
	s := ix.shard(k)
	s.mu.Lock()
	if _, ok := s.m[k]; !ok {
		e.tick = ix.clock.Add(1)
		s.m[k] = e
		ix.added(k, e)
	}
	delete(s.gone, k)
	ix.endClaim(s, k)
	s.mu.Unlock()
}

// release ends a claim without publishing.
func (ix *index) release(k blobKey) {
	s := ix.shard(k)
	s.mu.Lock()
	ix.endClaim(s, k)
	s.mu.Unlock()
}

func (ix *index) endClaim(s *shard, k blobKey) {
	if ch, ok := s.busy[k]; ok {
		close(ch)
		delete(s.busy, k)
	}
}

// take removes k from the index and claims it, so the caller can delete its
// bytes before anyone stores k again. Unless force, a pinned k is kept.
func (ix *index) take(k blobKey, force bool) (entry, bool) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok || (!force && (e.pins > 0 || s.held[k] > 0)) {
		return e, false
	}
	if _, busy := s.busy[k]; busy {
		return e, false
	}
	delete(s.m, k)
	ix.removed(k, e)
	s.busy[k] = make(chan struct{})
	if ix.loading.Load() {
		s.gone[k] = struct{}{}
	}
	return e, true
}

// adopt adds k as found in the persisted index, unless it is already known,
// being written or deleted, or was deleted since the load began.
func (ix *index) adopt(k blobKey, e entry) {
	s := ix.shard(k)
	s.mu.Lock()
	_, known := s.m[k]
	_, busy := s.busy[k]
	_, gone := s.gone[k]
	if !known && !busy && !gone {
		e.pins = 0
		s.m[k] = e
		ix.added(k, e)
	}
	s.mu.Unlock()
}

// loadDone ends the loading phase: deletions need no tombstones any more.
func (ix *index) loadDone() {
	ix.loading.Store(false)
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		s.gone = map[blobKey]struct{}{}
		s.mu.Unlock()
	}
}
