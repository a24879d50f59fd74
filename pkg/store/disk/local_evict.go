package disk

import (
	"container/heap"
	"context"
	"os"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// victim is a blob chosen for deletion.
type victim struct {
	k blobKey
	e entry
}

// reserve accounts k's bytes as an upload in progress, evicting if that
// would exceed the limit. On error nothing stays reserved.
func (l *Store) reserve(ctx context.Context, k blobKey) error {
	l.pending.Add(k.size)
	used := l.usage()
	lim := l.limit(k.size > l.inline)
	if lim < 0 || used <= lim {
		return nil
	}
	if err := l.makeRoom(ctx, k, lim); err != nil {
		l.pending.Add(-k.size)
		return err
	}
	return nil
}

// makeRoom brings usage to at most LowWatermark of lim: first by
// reclaiming the space of deleted small blobs (pack compaction), then by
// evicting least recently used blobs that are neither pinned nor held
// (Hold) and reclaiming again, from packs with a fair share of garbage if
// need be (reclaimUntil), and again while that frees something: evicted blobs scattered thinly over the
// packs are reclaimed only once a later round has evicted more. One
// eviction runs at a time; it waits for the index to finish loading so that
// it sees every blob. When held blobs alone leave no room for k, it fails
// with FAILED_PRECONDITION naming the write-back queue, without evicting.
func (l *Store) makeRoom(ctx context.Context, k blobKey, lim int64) error {
	if k.size > lim {
		return status.Errorf(codes.FailedPrecondition, "store %s: blob %s is larger than the store's room of %d bytes (quota %d, reserved disk space %d)", l.dir, k.digest(), lim, l.quota.Load(), l.reserved)
	}
	if err := l.heldRefusal(k, lim); err != nil {
		return err
	}
	select {
	case <-l.loaded:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	l.evictMu.Lock()
	defer l.evictMu.Unlock()
	target := int64(float64(lim) * l.low)
	// Uploads that fit keep going meanwhile (only one over the limit waits
	// here), so they may take the room made before this one sees it: try
	// again while a round frees something.
	for round := 0; l.usage() > lim; round++ {
		if round == maxRoomRounds || !l.freeTo(target, lim) {
			if err := l.heldRefusal(k, lim); err != nil {
				return err
			}
			return status.Errorf(codes.ResourceExhausted, "store %s: quota of %d bytes reached and nothing more can be freed now (blobs being read: %d bytes; uploads in progress: %d bytes, this one included; unreclaimed pack space: %d bytes); cannot store %s",
				l.dir, lim, l.ix.pinnedBytes(), l.pending.Load(), l.packs.garbage(), k.digest())
		}
	}
	return nil
}

// maxRoomRounds bounds how often makeRoom frees space for one upload.
const maxRoomRounds = 4

// freeTo brings usage down towards target: it reclaims pack garbage,
// evicts least recently used blobs if that is not enough, and reclaims
// again, from any pack with garbage if need be. It reports whether it freed
// anything. The caller holds evictMu.
func (l *Store) freeTo(target, lim int64) bool {
	before := l.usage()
	l.reclaimLocked()
	if l.usage() <= target {
		return true
	}
	victims := l.takeVictims(l.usage() - target)
	l.deleteBlobs(victims)
	for _, v := range victims {
		l.ix.release(v.k)
	}
	l.evictions.Add(int64(len(victims)))
	l.reclaimLocked()
	l.reclaimUntil(target)
	if len(victims) > 0 {
		l.log.Info("store: evicted blobs", "count", len(victims), "used_bytes", l.usage(), "limit_bytes", lim)
	}
	return len(victims) > 0 || l.usage() < before
}

// takeVictims removes from the index the oldest unpinned blobs totalling at
// least need bytes (fewer if not enough are free). It keeps a heap of the
// current candidates, so memory is bounded by the victims, not the store.
func (l *Store) takeVictims(need int64) []victim {
	if need <= 0 {
		return nil
	}
	h := &victimHeap{}
	var total int64
	for i := range l.ix.shards {
		s := &l.ix.shards[i]
		s.mu.Lock()
		s.each(func(k blobKey, e entry) bool {
			if e.pins > 0 || s.holds(k) > 0 || (total >= need && e.tick >= (*h)[0].e.tick) {
				return true
			}
			heap.Push(h, victim{k: k, e: e})
			total += k.size
			for h.Len() > 1 && total-(*h)[0].k.size >= need {
				total -= heap.Pop(h).(victim).k.size
			}
			return true
		})
		s.mu.Unlock()
	}
	out := make([]victim, 0, h.Len())
	for _, v := range *h {
		if _, ok := l.ix.take(v.k, false); ok {
			out = append(out, v)
		}
	}
	return out
}

// deleteBlobs removes the index entries and bytes of blobs already taken
// out of the in-memory index. A packed blob's bytes stay in its pack until
// compaction (see compactPacks).
func (l *Store) deleteBlobs(vs []victim) {
	wb := l.db.NewWriteBatch()
	for _, v := range vs {
		_ = wb.Delete(v.k.dbKey('m'))
		if v.e.inline && !v.e.packed() {
			_ = wb.Delete(v.k.dbKey('d'))
		}
		if v.e.chunked {
			_ = wb.Delete(v.k.dbKey('c'))
		}
	}
	if err := wb.Flush(); err != nil && err != badger.ErrDBClosed {
		l.log.Error("store: delete index entries", "count", len(vs), "error", err)
	}
	for _, v := range vs {
		if v.e.inline {
			continue
		}
		if err := os.Remove(l.blobPath(v.k)); err != nil && !os.IsNotExist(err) {
			l.log.Error("store: delete blob file", "path", l.blobPath(v.k), "error", err)
		}
	}
}

// victimHeap is a max-heap on tick: its top is the newest candidate, the
// first to drop when older ones already cover the need.
type victimHeap []victim

func (h victimHeap) Len() int           { return len(h) }
func (h victimHeap) Less(i, j int) bool { return h[i].e.tick > h[j].e.tick }
func (h victimHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *victimHeap) Push(x any)        { *h = append(*h, x.(victim)) }
func (h *victimHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}
