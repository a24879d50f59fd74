package disk

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// Hold keeps d from being evicted until a matching Release: holds count,
// so n Holds need n Releases. d need not be stored yet (hold a blob before
// writing it, so that no eviction slips in between the write and the
// hold). Holds live in memory only; whoever needs one across a restart
// (the write-back queue) takes it again after Open. Held blobs count
// against the quota like any other; when they alone leave no room for a
// write, the write fails with FAILED_PRECONDITION (see makeRoom). A
// malformed digest is ignored. Cost: one shard lock. Safe for concurrent
// use.
func (l *Store) Hold(d digest.Digest) {
	if k, ok := keyOf(d); ok {
		l.ix.hold(k, 1)
	}
}

// Release undoes one Hold of d; a Release without a Hold does nothing.
func (l *Store) Release(d digest.Digest) {
	if k, ok := keyOf(d); ok {
		l.ix.hold(k, -1)
	}
}

// HeldBytes is the size of the distinct blobs held (stored or not). Cheap.
func (l *Store) HeldBytes() int64 { return l.ix.held.Load() }

// hold adds delta (+1 or -1) to k's holds and keeps the held bytes.
func (ix *index) hold(k blobKey, delta int32) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.holds(k)
	switch {
	case delta > 0 && n == 0:
		ix.held.Add(k.size)
	case delta < 0 && n == 0:
		return
	case delta < 0 && n == 1:
		ix.held.Add(-k.size)
		s.setHolds(k, 0)
		return
	}
	s.setHolds(k, n+delta)
}

// isHeld reports whether k has a hold.
func (ix *index) isHeld(k blobKey) bool {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holds(k) > 0
}

// heldRefusal is the error for a write of k that cannot fit because the
// held blobs (with k, unless k is held and so already counted) exceed lim:
// evicting cannot help until the holders let go, so the error is one
// clients do not retry. It returns nil when the held blobs leave room.
func (l *Store) heldRefusal(k blobKey, lim int64) error {
	held := l.ix.held.Load()
	need := held
	if !l.ix.isHeld(k) {
		need += k.size
	}
	if need <= lim {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "store %s: %d bytes are held for the write-back queue (pushes waiting for their remotes) and the room of %d bytes cannot also hold %s; writes are refused until the push remotes take the queued blobs (see bst status)",
		l.dir, held, lim, k.digest())
}
