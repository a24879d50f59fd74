package disk

import (
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/castd/castd/pkg/digest"
)

// blobKey is the in-memory form of a digest: its raw hash, size and
// function. It is what the store passes around; the index's maps key on a
// compact projection of it (see narrowKey), so that a million SHA-256 blobs
// cost what they did before castd knew other functions.
//
// Exactness: every function castd verifies but SHA-384 and SHA-512 has a
// raw hash of at most 32 bytes (MD5 16, SHA-1 20, SHA-256 and BLAKE3 32),
// which hash holds whole (zero-padded). Their index entries are keyed by
// narrowKey, hash plus size with the function in the size's top byte: 40
// bytes and no pointers, exactly as the SHA-256-only index was (a SHA-256
// key is bit for bit the old one, the function being 0). SHA-384/SHA-512
// hashes (48 and 64 bytes) do not fit: hash holds their first 32 bytes and
// ext the rest, and their entries live in maps of their own keyed by the
// whole blobKey (80 bytes, still no pointers). No key is ever truncated or
// hashed down, so two digests share a key only if they are equal, and
// k.digest() always gives back the true digest. Wide keys cost their larger
// size only for the (rare) blobs of those functions.
type blobKey struct {
	hash [32]byte
	ext  [32]byte // bytes 32-63 of a SHA-384/SHA-512 hash; zero otherwise
	size int64
	fn   digest.Function
}

// maxKeySize bounds a blob's size so that narrowKey can carry the function
// in the size's top byte (2^56 bytes is 64 PiB).
const maxKeySize = 1<<56 - 1

// narrowKey is a blobKey of a function with a hash of at most 32 bytes, as
// the index's maps key it: 40 bytes, no pointers, so a million of them cost
// the garbage collector nothing.
type narrowKey struct {
	hash [32]byte
	meta uint64 // size in the low 56 bits, function in the top 8
}

// keyOf converts a validated digest; ok is false for a malformed hash, an
// unknown function or a size beyond maxKeySize.
func keyOf(d digest.Digest) (k blobKey, ok bool) {
	if d.Func != digest.SHA256 && !slices.Contains(digest.Functions, d.Func) || len(d.Hash) != d.Func.HashLength() || d.Size < 0 || d.Size > maxKeySize {
		return k, false
	}
	h := d.Hash
	if len(h) > 64 {
		if _, err := hex.Decode(k.ext[:], []byte(h[64:])); err != nil {
			return k, false
		}
		h = h[:64]
	}
	if _, err := hex.Decode(k.hash[:], []byte(h)); err != nil {
		return k, false
	}
	k.size, k.fn = d.Size, d.Func
	return k, true
}

// raw is k's raw hash (a new slice).
func (k blobKey) raw() []byte { return k.appendRaw(make([]byte, 0, k.fn.HashBytes())) }

// appendRaw appends k's raw hash to b.
func (k *blobKey) appendRaw(b []byte) []byte {
	n := k.fn.HashBytes()
	if n <= 32 {
		return append(b, k.hash[:n]...)
	}
	return append(append(b, k.hash[:]...), k.ext[:n-32]...)
}

// wide reports whether k's hash is longer than 32 bytes (SHA-384, SHA-512).
func (k blobKey) wide() bool { return k.fn.HashBytes() > 32 }

func (k blobKey) narrow() narrowKey {
	return narrowKey{hash: k.hash, meta: uint64(k.size) | uint64(k.fn)<<56}
}

func (n narrowKey) key() blobKey {
	return blobKey{hash: n.hash, size: int64(n.meta & maxKeySize), fn: digest.Function(n.meta >> 56)}
}

func (k blobKey) digest() digest.Digest {
	return digest.Digest{Hash: hex.EncodeToString(k.raw()), Size: k.size, Func: k.fn}
}

// fileName is the blob's name under its fan-out directory (see blobPath).
func (k blobKey) fileName() string {
	return hex.EncodeToString(k.raw()) + "-" + strconv.FormatInt(k.size, 10)
}

// dbKey is k's key in badger under prefix. A SHA-256 key is prefix, hash,
// big-endian size: 41 bytes, the layout of stores written before other
// functions. Another function's key is prefix, function, hash, size: 10
// bytes plus the hash, a length no SHA-256 key has (MD5 26, SHA-1 30,
// BLAKE3 42, SHA-384 58, SHA-512 74), so the two never collide.
func (k blobKey) dbKey(prefix byte) []byte {
	b := make([]byte, 0, 10+k.fn.HashBytes())
	b = append(b, prefix)
	if k.fn != digest.SHA256 {
		b = append(b, byte(k.fn))
	}
	b = k.appendRaw(b)
	return binary.BigEndian.AppendUint64(b, uint64(k.size))
}

// keyFromDB inverts dbKey (the prefix is not checked).
func keyFromDB(b []byte) (blobKey, bool) {
	var k blobKey
	if len(b) == 41 {
		copy(k.hash[:], b[1:33])
		k.size = int64(binary.BigEndian.Uint64(b[33:]))
		return k, k.size >= 0 && k.size <= maxKeySize
	}
	if len(b) < 2 {
		return k, false
	}
	f := digest.Function(b[1])
	if f == digest.SHA256 || !slices.Contains(digest.Functions, f) || len(b) != 10+f.HashBytes() {
		return k, false
	}
	raw := b[2 : 2+f.HashBytes()]
	copy(k.hash[:], raw)
	if len(raw) > 32 {
		copy(k.ext[:], raw[32:])
	}
	k.fn = f
	k.size = int64(binary.BigEndian.Uint64(b[len(b)-8:]))
	return k, k.size >= 0 && k.size <= maxKeySize
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
// the dir/cas fan-out, so reconciliation works shard by shard), in two
// keysets: n for the functions whose keys are narrow, w for SHA-384 and
// SHA-512 (see blobKey). Its methods pick the keyset of a key; the caller
// holds mu.
type shard struct {
	mu sync.Mutex
	n  keyset[narrowKey]
	w  keyset[blobKey]
}

// keyset is the state of one kind of key in a shard.
type keyset[K comparable] struct {
	m    map[K]entry
	busy map[K]chan struct{} // being written or deleted; closed when done
	gone map[K]struct{}      // deleted while the index was loading
	held map[K]int32         // holds against eviction (see Local.Hold), stored or not
}

func newKeyset[K comparable]() keyset[K] {
	return keyset[K]{m: map[K]entry{}, busy: map[K]chan struct{}{}, gone: map[K]struct{}{}, held: map[K]int32{}}
}

// lookup, keep and forget pick k's keyset's map (narrow or wide) out of a
// pair, so that each shard method below is one line for both keysets.
func lookup[V any](n map[narrowKey]V, w map[blobKey]V, k blobKey) (V, bool) {
	if k.wide() {
		v, ok := w[k]
		return v, ok
	}
	v, ok := n[k.narrow()]
	return v, ok
}

func keep[V any](n map[narrowKey]V, w map[blobKey]V, k blobKey, v V) {
	if k.wide() {
		w[k] = v
	} else {
		n[k.narrow()] = v
	}
}

func forget[V any](n map[narrowKey]V, w map[blobKey]V, k blobKey) {
	if k.wide() {
		delete(w, k)
	} else {
		delete(n, k.narrow())
	}
}

func (s *shard) get(k blobKey) (entry, bool) { return lookup(s.n.m, s.w.m, k) }
func (s *shard) set(k blobKey, e entry)      { keep(s.n.m, s.w.m, k, e) }
func (s *shard) del(k blobKey)               { forget(s.n.m, s.w.m, k) }

// len is the number of stored blobs.
func (s *shard) len() int { return len(s.n.m) + len(s.w.m) }

// each calls fn for every stored blob until fn returns false. fn must not
// add or delete entries (it may set existing ones).
func (s *shard) each(fn func(k blobKey, e entry) bool) {
	for n, e := range s.n.m {
		if !fn(n.key(), e) {
			return
		}
	}
	for k, e := range s.w.m {
		if !fn(k, e) {
			return
		}
	}
}

func (s *shard) busyCh(k blobKey) (chan struct{}, bool) { return lookup(s.n.busy, s.w.busy, k) }
func (s *shard) setBusy(k blobKey, ch chan struct{})    { keep(s.n.busy, s.w.busy, k, ch) }
func (s *shard) delBusy(k blobKey)                      { forget(s.n.busy, s.w.busy, k) }

func (s *shard) isGone(k blobKey) bool { _, ok := lookup(s.n.gone, s.w.gone, k); return ok }
func (s *shard) setGone(k blobKey)     { keep(s.n.gone, s.w.gone, k, struct{}{}) }
func (s *shard) delGone(k blobKey)     { forget(s.n.gone, s.w.gone, k) }

// holds is k's hold count.
func (s *shard) holds(k blobKey) int32 { n, _ := lookup(s.n.held, s.w.held, k); return n }

// setHolds sets k's hold count; 0 forgets k.
func (s *shard) setHolds(k blobKey, n int32) {
	if n == 0 {
		forget(s.n.held, s.w.held, k)
	} else {
		keep(s.n.held, s.w.held, k, n)
	}
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
	e, ok := s.get(k)
	if !ok || !e.packed() || e.pack != from {
		return false
	}
	ix.removed(k, e)
	e.pack, e.off = to.pack, to.off
	s.set(k, e)
	ix.added(k, e)
	return true
}

func newIndex() *index {
	ix := &index{}
	for i := range ix.shards {
		ix.shards[i] = shard{n: newKeyset[narrowKey](), w: newKeyset[blobKey]()}
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
		s.each(func(k blobKey, e entry) bool {
			if e.pins > 0 {
				n += k.size
			}
			return true
		})
		s.mu.Unlock()
	}
	return n
}

func (ix *index) shard(k blobKey) *shard { return &ix.shards[k.hash[0]] }

// touch marks k used and reports whether it is stored.
func (ix *index) touch(k blobKey) bool {
	s := ix.shard(k)
	s.mu.Lock()
	e, ok := s.get(k)
	if ok {
		e.tick = ix.clock.Add(1)
		s.set(k, e)
	}
	s.mu.Unlock()
	return ok
}

// pin marks k used and holds it against eviction until unpin.
func (ix *index) pin(k blobKey) (entry, bool) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(k)
	if ok {
		e.tick = ix.clock.Add(1)
		e.pins++
		s.set(k, e)
	}
	return e, ok
}

// peek returns k's entry without marking it used.
func (ix *index) peek(k blobKey) (entry, bool) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(k)
	return e, ok
}

func (ix *index) unpin(k blobKey) {
	s := ix.shard(k)
	s.mu.Lock()
	if e, ok := s.get(k); ok && e.pins > 0 {
		e.pins--
		s.set(k, e)
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
	if e, ok := s.get(k); ok {
		e.tick = ix.clock.Add(1)
		s.set(k, e)
		return present, nil
	}
	if ch, ok := s.busyCh(k); ok {
		return waiting, ch
	}
	s.setBusy(k, make(chan struct{}))
	return claimed, nil
}

// publish makes a claimed k visible with e and ends the claim.
func (ix *index) publish(k blobKey, e entry) {
	s := ix.shard(k)
	s.mu.Lock()
	if _, ok := s.get(k); !ok {
		e.tick = ix.clock.Add(1)
		s.set(k, e)
		ix.added(k, e)
	}
	s.delGone(k)
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
	if ch, ok := s.busyCh(k); ok {
		close(ch)
		s.delBusy(k)
	}
}

// take removes k from the index and claims it, so the caller can delete its
// bytes before anyone stores k again. Unless force, a pinned k is kept.
func (ix *index) take(k blobKey, force bool) (entry, bool) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(k)
	if !ok || (!force && (e.pins > 0 || s.holds(k) > 0)) {
		return e, false
	}
	if _, busy := s.busyCh(k); busy {
		return e, false
	}
	s.del(k)
	ix.removed(k, e)
	s.setBusy(k, make(chan struct{}))
	if ix.loading.Load() {
		s.setGone(k)
	}
	return e, true
}

// adopt adds k as found in the persisted index, unless it is already known,
// being written or deleted, or was deleted since the load began.
func (ix *index) adopt(k blobKey, e entry) {
	s := ix.shard(k)
	s.mu.Lock()
	_, known := s.get(k)
	_, busy := s.busyCh(k)
	if !known && !busy && !s.isGone(k) {
		e.pins = 0
		s.set(k, e)
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
		s.n.gone = map[narrowKey]struct{}{}
		s.w.gone = map[blobKey]struct{}{}
		s.mu.Unlock()
	}
}
