package store

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sizes of badger's files, shared by badgerOptions and minFreeBytes.
const (
	memTableSize     = 16 << 20
	valueLogFileSize = 16 << 20
)

// minFreeBytes is the free space below which the store refuses writes.
// badger creates its write-ahead log (.mem, 2×memTableSize) and value-log
// files (2×valueLogFileSize) sparse, memory-maps them and writes through
// the mapping: a page the filesystem cannot back raises SIGBUS, which kills
// castd, and a castd restarted on that disk dies the same way. Refusing
// writes while this much is still free leaves room for the next two logs,
// the next value-log file, and the memtable flush and compactions they
// cause, so badger never touches a page it cannot get. What remains is a
// race no free-space check can close: another process taking the last
// minFreeBytes within the 100 ms a free-space reading is reused.
const minFreeBytes = 2*(2*memTableSize) + 2*valueLogFileSize + 4*memTableSize

// errReadOnly is the write error of a store opened read-only.
func (l *Local) errReadOnly() error {
	return status.Errorf(codes.FailedPrecondition,
		"store %s: read-only: its filesystem was full when castd started; stored blobs are served, writes are refused until castd restarts with at least %d MiB free",
		l.dir, minFreeBytes>>20)
}

// spaceFor refuses a write of size bytes when the store is read-only or
// when it would leave less than minFreeBytes free. A full filesystem is
// RESOURCE_EXHAUSTED: the code REAPI gives for insufficient storage, and
// the condition passes once space is freed (writes are accepted again
// without a restart). Cost: a statfs at most every 100 ms, and one per
// refused write. Transitions are logged once each.
func (l *Local) spaceFor(size int64) error {
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
		}
	}
	if full {
		return status.Errorf(codes.ResourceExhausted,
			"store %s: filesystem full: %d MiB free, a write of %d bytes needs %d MiB free; write refused, stored blobs are still served; free space on the filesystem",
			l.dir, free>>20, size, (minFreeBytes+size)>>20)
	}
	return nil
}

// writesPaused reports whether background writes (recency, compaction,
// value-log GC, reconciliation) must wait: the store is read-only, or the
// filesystem was full at the last write.
func (l *Local) writesPaused() bool {
	return l.readOnly || l.diskFull.Load()
}

// startsReadOnly decides at Open whether the index must be opened
// read-only: too little free space for badger to create its files.
func (l *Local) startsReadOnly() bool {
	free := l.disk.available(true)
	if free >= minFreeBytes {
		return false
	}
	l.log.Error("store: filesystem full at start; opening read-only: stored blobs are served, writes are refused until castd restarts with free space",
		"dir", l.dir, "free_bytes", free, "needed_bytes", minFreeBytes)
	return true
}

// isNoSpace reports whether err is a full filesystem or quota.
func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// noSpaceAtStart is the error of a store that cannot open at all on a
// full filesystem (it was never created, so there is nothing to serve).
func noSpaceAtStart(dir string, err error) error {
	return fmt.Errorf("store directory %s: filesystem full and no store to serve read-only (%w); free at least %d MiB", dir, err, minFreeBytes>>20)
}

// closeIndex closes badger unless the filesystem is too full for the
// memtable flush badger does on Close (it writes the table through a
// memory mapping, so a full disk would kill castd with SIGBUS on the way
// out). Then the index is left as kill -9 leaves it: every acknowledged
// write is in the write-ahead log, which the next Open replays.
func (l *Local) closeIndex() error {
	if !l.readOnly {
		if free := l.disk.available(true); free < closeFreeBytes {
			l.log.Warn("store: filesystem full at shutdown; leaving the index to recover from its write-ahead log at the next start",
				"dir", l.dir, "free_bytes", free)
			return nil
		}
	}
	return l.db.Close()
}

// closeFreeBytes is the free space badger's Close needs: one memtable
// flushed to a level-0 table, and the manifest entry for it.
const closeFreeBytes = 4 * memTableSize
