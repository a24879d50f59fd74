package disk

import (
	"errors"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sizes of badger's files, shared by badgerOptions and the space margins.
const (
	memTableSize     = 16 << 20
	valueLogFileSize = 16 << 20
)

// minFreeBytes is the free space below which the store refuses writes.
// badger creates its write-ahead log (.mem, 2×memTableSize) and value-log
// files (2×valueLogFileSize) sparse, memory-maps them and writes through
// the mapping: a page the filesystem cannot back raises SIGBUS, which kills
// castd. Refusing writes while this much is still free leaves room for the
// next two logs, the next value-log file, and the memtable flush and
// compactions they cause, so badger never touches a page it cannot get.
// What remains is a race no free-space check can close: another process
// taking the last minFreeBytes within the 100 ms a reading is reused, or
// while a background compaction runs.
const minFreeBytes = 2*(2*memTableSize) + 2*valueLogFileSize + 4*memTableSize

// indexFreeBytes is the free space badger needs to open read-write (a new
// log and value-log file, the flush of logs left by a killed castd) or to
// close (one memtable flushed to a table). See ballast.
const indexFreeBytes = 4 * memTableSize

// errReadOnly is the write error of a store opened read-only.
func (l *Store) errReadOnly() error {
	return markFull(status.Errorf(codes.FailedPrecondition,
		"store %s: read-only: its filesystem was full when castd started; stored blobs are served, writes are refused until castd restarts with at least %d MiB free",
		l.dir, minFreeBytes>>20))
}

// spaceFor refuses a write of size bytes when the store is read-only or
// when it would leave less than minFreeBytes free. A full filesystem is
// RESOURCE_EXHAUSTED: the code REAPI gives for insufficient storage, and
// the condition passes once space is freed (writes are accepted again
// without a restart). Cost: a statfs at most every 100 ms, and one per
// refused write. Transitions are logged once each.
func (l *Store) spaceFor(size int64) error {
	if l.readOnly {
		return l.errReadOnly()
	}
	free := l.disk.available(false)
	if free-size < minFreeBytes {
		free = l.disk.available(true)
	}
	full := free-size < minFreeBytes
	if was := l.diskFull.Swap(full); was != full {
		if full {
			l.log.Error("store: filesystem full; refusing writes, serving reads", "dir", l.dir, "free_bytes", free, "needed_bytes", minFreeBytes+size)
		} else {
			l.log.Info("store: filesystem has room again; accepting writes", "dir", l.dir, "free_bytes", free)
			l.keepBallast() // given up at Open or Close; space for it may be back
		}
	}
	if full {
		return markFull(status.Errorf(codes.ResourceExhausted,
			"store %s: filesystem full: %d MiB free, a write of %d bytes needs %d MiB free; write refused, stored blobs are still served; free space on the filesystem",
			l.dir, free>>20, size, (minFreeBytes+size)>>20))
	}
	return nil
}

// writesRefused is the castd_store_writes_refused value: 0 accepting, 1
// filesystem full at the last write, 2 read-only.
func (l *Store) writesRefused() int64 {
	switch {
	case l.readOnly:
		return 2
	case l.diskFull.Load():
		return 1
	}
	return 0
}

// writesPaused reports whether background writes (recency, compaction,
// value-log GC) must wait: the store is read-only or its filesystem is
// full (checked afresh).
func (l *Store) writesPaused() bool {
	return l.spaceFor(0) != nil
}

// isNoSpace reports whether err is a full filesystem or quota.
func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}
