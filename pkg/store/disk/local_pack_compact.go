package disk

import (
	"hash/crc32"
)

const (
	// compactRatio: a sealed pack whose live bytes are at most this share
	// of its size is compacted, so deleted small blobs hold at most about
	// as much disk again as live ones.
	compactRatio = 0.5
	// forcedGarbage: a store that is still over its limit after eviction
	// also compacts packs with at least this share of garbage, so it moves
	// at most three live bytes per byte it reclaims; with less garbage
	// everywhere it evicts more instead (see makeRoom).
	forcedGarbage = 0.25
	// compactBatchBytes bounds the bytes compaction holds in memory at once.
	compactBatchBytes = 8 << 20
)

// compactPacks reclaims the disk space of deleted small blobs: each sealed
// pack that is mostly garbage has its live blobs rewritten into the active
// pack (through the committer, like any Put) and is then removed. Under LRU
// eviction old packs empty out as a whole, so most compactions move little.
//
// It waits for the index to be loaded (before that a pack's live bytes are
// unknown) and holds evictMu per pack, so no blob is deleted while it
// moves. A blob enters the index in the same step as its commit (see
// commitReq), so once every indexed blob has moved, none is left behind; a
// pack is removed only when its live bytes are zero all the same.
func (l *Store) compactPacks() {
	select {
	case <-l.loaded:
	default:
		return
	}
	for _, pf := range l.packs.sparse() {
		if l.stopping() {
			return
		}
		l.evictMu.Lock()
		err := l.compactPack(pf)
		l.evictMu.Unlock()
		if err != nil {
			l.log.Warn("store: compacting a pack file", "path", pf.path, "error", err)
			return
		}
	}
}

// reclaimLocked is compactPacks for a store over its limit (makeRoom, which
// holds evictMu): the active pack too is sealed and compacted when it is
// mostly garbage, so a store smaller than a pack reclaims space as well.
func (l *Store) reclaimLocked() {
	if a := l.packs.activePack(); a.size.Load() > 0 && mostlyGarbage(a) {
		if err := l.commits.sealActive(); err != nil {
			l.log.Warn("store: sealing the active pack file", "path", a.path, "error", err)
		}
	}
	for _, pf := range l.packs.sparse() {
		if err := l.compactPack(pf); err != nil {
			l.log.Warn("store: compacting a pack file", "path", pf.path, "error", err)
			return
		}
	}
}

// reclaimUntil compacts packs worth it under pressure (at least
// forcedGarbage of them garbage), the most garbage first and the active
// pack too, until usage is at most target. It is for a store still over its
// limit after reclaimLocked and an eviction: when reads have scattered
// recency over the packs, the evicted blobs leave every pack mostly live,
// and ordinary compaction would reclaim nothing although the evicted bytes
// are garbage. The caller holds evictMu.
func (l *Store) reclaimUntil(target int64) {
	if l.usage() <= target {
		return
	}
	if a := l.packs.activePack(); worthForcing(a) {
		if err := l.commits.sealActive(); err != nil {
			l.log.Warn("store: sealing the active pack file", "path", a.path, "error", err)
		}
	}
	for _, pf := range l.packs.forcing() {
		if l.usage() <= target || l.stopping() {
			return
		}
		if err := l.compactPack(pf); err != nil {
			l.log.Warn("store: compacting a pack file", "path", pf.path, "error", err)
			return
		}
	}
}

// packedBlob is a blob found in a pack being compacted.
type packedBlob struct {
	k blobKey
	e entry
}

// compactPack moves pf's live blobs to the active pack and removes pf. The
// caller holds evictMu.
func (l *Store) compactPack(pf *packFile) error {
	blobs := l.blobsInPack(pf.id)
	moved := 0
	for len(blobs) > 0 {
		n, size := 0, int64(0)
		for n < len(blobs) && (n == 0 || size+blobs[n].k.size <= compactBatchBytes) {
			size += blobs[n].k.size
			n++
		}
		if err := l.moveBlobs(pf, blobs[:n]); err != nil {
			return err
		}
		moved += n
		blobs = blobs[n:]
	}
	if pf.live.Load() > 0 {
		return nil
	}
	l.log.Debug("store: compacted a pack file", "path", pf.path, "bytes", pf.size.Load(), "blobs_moved", moved)
	if err := l.packs.remove(pf); err != nil {
		return err
	}
	l.compactions.Add(1)
	return nil
}

// blobsInPack lists the index entries that point into pack id.
func (l *Store) blobsInPack(id uint32) []packedBlob {
	var out []packedBlob
	for i := range l.ix.shards {
		s := &l.ix.shards[i]
		s.mu.Lock()
		s.each(func(k blobKey, e entry) bool {
			if e.packed() && e.pack == id {
				out = append(out, packedBlob{k, e})
			}
			return true
		})
		s.mu.Unlock()
	}
	return out
}

// moveBlobs rewrites blobs of pf into the active pack and points the index
// at their new place. A blob that fails its checksum is dropped, as a read
// would. The caller holds evictMu.
func (l *Store) moveBlobs(pf *packFile, blobs []packedBlob) error {
	reqs := make([]*commitReq, 0, len(blobs))
	for _, b := range blobs {
		buf, err := l.packs.read(pf.id, b.e.off, b.k.size)
		if err != nil {
			l.discardLocked(b.k, "bytes missing from its pack file: "+err.Error())
			continue
		}
		if crc32.Checksum(buf, castagnoli) != b.e.crc {
			l.discardLocked(b.k, "bytes in its pack file fail their checksum")
			continue
		}
		reqs = append(reqs, &commitReq{blob: buf, k: b.k, e: entry{crc: b.e.crc, inline: true, tick: b.e.tick}})
	}
	if err := l.commits.commitBlobs(reqs); err != nil {
		return err
	}
	for _, r := range reqs {
		l.ix.relocate(r.k, pf.id, r.e) // present: nothing is deleted while evictMu is held
		l.movedBytes.Add(r.k.size)
	}
	return nil
}

// reconcilePacks drops index entries whose bytes a crash or a power loss
// took: a pack file that is gone, or shorter than the entry needs.
func (l *Store) reconcilePacks() {
	var lost []blobKey
	for i := range l.ix.shards {
		s := &l.ix.shards[i]
		s.mu.Lock()
		s.each(func(k blobKey, e entry) bool {
			if e.packed() && !l.packs.holds(e.pack, int64(e.off)+k.size) {
				lost = append(lost, k)
			}
			return true
		})
		s.mu.Unlock()
	}
	for _, k := range lost {
		_ = l.discard(k, "bytes missing from its pack file")
	}
}
