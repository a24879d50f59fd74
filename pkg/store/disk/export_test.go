package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/castd/castd/pkg/digest"
)

// CorruptInlineForTest overwrites the stored bytes of a small blob,
// bypassing verification, to simulate disk corruption: in its pack (val is
// cut or zero-padded to the blob's size) or, for a blob in the earlier
// layout, its badger value.
func CorruptInlineForTest(l *Store, d digest.Digest, val []byte) error {
	k, _ := keyOf(d)
	e, ok := l.ix.peek(k)
	if !ok {
		return fmt.Errorf("%s not stored", d)
	}
	if !e.packed() {
		return l.db.Update(func(txn *badger.Txn) error { return txn.Set(k.dbKey('d'), val) })
	}
	buf := make([]byte, k.size)
	copy(buf, val)
	l.packs.mu.RLock()
	pf := l.packs.files[e.pack]
	l.packs.mu.RUnlock()
	_, err := pf.f.WriteAt(buf, int64(e.off))
	return err
}

// PutEarlierInlineForTest stores d as stores written before pack files kept
// small blobs: val under 'd' in badger, metadata of kind 1. A blob already
// stored is replaced.
func PutEarlierInlineForTest(l *Store, d digest.Digest, val []byte, crc uint32) error {
	k, _ := keyOf(d)
	l.evictMu.Lock()
	if _, ok := l.ix.take(k, true); ok {
		l.ix.release(k)
	}
	l.evictMu.Unlock()
	e := entry{crc: crc, inline: true}
	if err := l.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(k.dbKey('d'), val); err != nil {
			return err
		}
		return txn.Set(k.dbKey('m'), encodeMeta(e, 1))
	}); err != nil {
		return err
	}
	if st, _ := l.ix.claim(k); st == claimed {
		l.ix.publish(k, e)
	}
	return nil
}

// CompactPacksForTest runs a pack compaction now.
func CompactPacksForTest(l *Store) { l.compactPacks() }

// PackInfo is one pack file as the store sees it.
type PackInfo struct {
	ID         uint32
	Path       string
	Size, Live int64 // bytes written; bytes the index points at
	Counted    int64 // live bytes recounted from the index
}

// PacksForTest lists the pack files with their live bytes as tracked and as
// recounted from the in-memory index.
func PacksForTest(l *Store) []PackInfo {
	counted := map[uint32]int64{}
	for i := range l.ix.shards {
		s := &l.ix.shards[i]
		s.mu.Lock()
		s.each(func(k blobKey, e entry) bool {
			if e.packed() {
				counted[e.pack] += k.size
			}
			return true
		})
		s.mu.Unlock()
	}
	l.packs.mu.RLock()
	defer l.packs.mu.RUnlock()
	var out []PackInfo
	for id, pf := range l.packs.files {
		out = append(out, PackInfo{ID: id, Path: pf.path, Size: pf.size.Load(), Live: pf.live.Load(), Counted: counted[id]})
	}
	slices.SortFunc(out, func(a, b PackInfo) int { return int(a.ID) - int(b.ID) })
	return out
}

// WithPackSizeForTest sets where pack files are sealed.
func WithPackSizeForTest(o Options, size int64) Options {
	o.packSize = size
	return o
}

// BlobPathForTest returns where a file blob lives.
func BlobPathForTest(l *Store, d digest.Digest) string {
	k, _ := keyOf(d)
	return l.blobPath(k)
}

// SetBeforeCommitForTest installs (or, with nil, removes) a hook that runs
// before each group commit of index writes with the group's size; an error
// from it fails the whole group.
func SetBeforeCommitForTest(l *Store, hook func(n int) error) {
	if hook == nil {
		l.commits.beforeCommit.Store(nil)
		return
	}
	l.commits.beforeCommit.Store(&hook)
}

// QueuedCommitsForTest is how many Puts wait for the next group commit.
func QueuedCommitsForTest(l *Store) int { return l.commits.queued() }

// DirectMin is the size from which an Uncached put writes with O_DIRECT.
const DirectMin = directMin

// DirectWriteForTest writes chunks to path as copyVerified does with
// O_DIRECT asked for, and reports whether O_DIRECT was still on at the end.
func DirectWriteForTest(path string, chunks [][]byte) (direct bool, err error) {
	f, err := os.Create(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	w := newDirectWriter(f)
	for _, c := range chunks {
		if err := w.write(c); err != nil {
			return w.direct, err
		}
	}
	return w.direct, w.finish()
}

// StripChunkSumsForTest makes the file blob d look as stores written
// before chunk sums left it: metadata of kind 0 and no 'c' key.
func StripChunkSumsForTest(l *Store, d digest.Digest) error {
	k, _ := keyOf(d)
	s := l.ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(k)
	if !ok || e.inline {
		return fmt.Errorf("%s is not a stored file blob", d)
	}
	e.chunked = false
	if err := l.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(k.dbKey('c')); err != nil {
			return err
		}
		return txn.Set(k.dbKey('m'), encodeMeta(e, e.tick))
	}); err != nil {
		return err
	}
	s.set(k, e)
	return nil
}

// HasChunkSumsForTest reports whether the index holds chunk sums for d.
func HasChunkSumsForTest(l *Store, d digest.Digest) bool {
	k, _ := keyOf(d)
	_, err := l.chunkSums(k)
	return err == nil
}

// HoldLoadForTest makes the next Opens wait, before loading their index,
// until the returned release is called; onMiss then runs whenever a read
// misses a blob while the index is loading. Tests restore both with the
// returned reset.
func HoldLoadForTest(onMiss func(l *Store)) (release, reset func()) {
	gate := make(chan struct{})
	testHookLoadStart = func() { <-gate }
	testHookMissedWhileLoading = onMiss
	var once bool
	release = func() {
		if !once {
			once = true
			close(gate)
		}
	}
	return release, func() { testHookLoadStart, testHookMissedWhileLoading = nil, nil }
}

// WaitLoadedForTest waits until l's index load has ended.
func WaitLoadedForTest(l *Store) { <-l.loaded }

// PutUnverifiedForTest stores data under d without checking that it hashes
// to d (the size must match), as a small blob or a file as its size says:
// the only way to store two blobs whose digests differ in nothing but the
// function (or in a SHA-512 hash's tail), which real bytes cannot produce.
func PutUnverifiedForTest(l *Store, d digest.Digest, data []byte) error {
	if int64(len(data)) != d.Size {
		return fmt.Errorf("%d bytes for %s", len(data), d)
	}
	return l.put(context.Background(), d, func(k blobKey) (entry, error) {
		if k.size <= l.inline {
			return l.writeInline(k, data, true)
		}
		f, err := os.CreateTemp(l.tmpDir, "put-")
		if err != nil {
			return entry{}, err
		}
		if _, err := f.Write(data); err != nil {
			return entry{}, err
		}
		var sums []byte
		for off := 0; off < len(data); off += chunkSize {
			sums = binary.BigEndian.AppendUint32(sums, crc32.Checksum(data[off:min(off+chunkSize, len(data))], castagnoli))
		}
		return l.install(k, f, crc32.Checksum(data, castagnoli), sums)
	})
}

// KeyBytesForTest returns d's badger key under prefix ('m' metadata, 'c'
// chunk sums, 'd' old inline bytes).
func KeyBytesForTest(d digest.Digest, prefix byte) []byte {
	k, _ := keyOf(d)
	return k.dbKey(prefix)
}
