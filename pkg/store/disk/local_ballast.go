package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// The ballast (Options.Ballast) is dir/ballast, indexFreeBytes allocated while the
// filesystem has room (created at Open and by the flush loop). When the
// filesystem is full at Open or at Close, the store deletes it, so that
// badger has room to open read-write (and replay the logs of a killed
// castd) or to flush on Close instead of dying of SIGBUS. It is not given
// up while serving: a process filling the disk would only take it too.
// The guard (spaceFor) keeps refusing writes until minFreeBytes are free.

// ballastPath is where the ballast lives.
func (l *Store) ballastPath() string { return filepath.Join(l.dir, "ballast") }

// keepBallast allocates the ballast when it is missing and the filesystem
// has room for it beyond minFreeBytes. Filesystems without fallocate get
// none. Cost: a stat; an fallocate when created.
func (l *Store) keepBallast() {
	if !l.ballast || l.readOnly {
		return
	}
	path := l.ballastPath()
	if _, err := os.Stat(path); err == nil || l.disk.available(true) < minFreeBytes+indexFreeBytes {
		return
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, indexFreeBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path) // only a complete ballast counts
	}
	if err != nil {
		_ = os.Remove(tmp)
		l.log.Debug("store: no ballast for a full filesystem", "dir", l.dir, "error", err)
	}
}

// roomForIndex reports whether badger has indexFreeBytes to work with,
// deleting the ballast to make them if need be.
func (l *Store) roomForIndex(when string) bool {
	if l.disk.available(true) >= indexFreeBytes {
		return true
	}
	if err := os.Remove(l.ballastPath()); err != nil {
		return false
	}
	free := l.disk.available(true)
	l.log.Warn("store: filesystem full; released the space held in reserve for the index", "dir", l.dir, "when", when, "free_bytes", free)
	return free >= indexFreeBytes
}

// openIndex opens badger, read-only when Open found no room for it
// (l.readOnly). A read-only open is impossible while the write-ahead logs
// of a killed castd are waiting to be replayed (badger must truncate
// them); then the error says how much space to free.
func (l *Store) openIndex() (*badger.DB, error) {
	path := filepath.Join(l.dir, "index")
	if l.readOnly {
		l.log.Error("store: filesystem full at start; opening read-only: stored blobs are served, writes are refused until castd restarts with free space",
			"dir", l.dir, "free_bytes", l.disk.available(true), "needed_bytes", indexFreeBytes)
		if pendingLogs(path) {
			return nil, fmt.Errorf("store directory %s: filesystem full, and the index has writes to replay that need space (castd stopped without closing it); free at least %d MiB and start castd again",
				l.dir, indexFreeBytes>>20)
		}
	}
	db, err := badger.Open(badgerOptions(path, l.log, l.syncWrites).WithReadOnly(l.readOnly))
	if err != nil {
		return nil, fmt.Errorf("store directory %s: open index: %w", l.dir, err)
	}
	return db, nil
}

// pendingLogs reports whether the badger directory holds write-ahead logs
// (memtables not flushed to tables).
func pendingLogs(dir string) bool {
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".mem") {
			return true
		}
	}
	return false
}

// closeIndex closes badger, which flushes its memtable through a memory
// mapping, unless even the ballast cannot make room for that: then the
// index is left as kill -9 leaves it (every acknowledged write is in the
// write-ahead log, which the next Open replays) rather than dying of
// SIGBUS on the way out.
func (l *Store) closeIndex() error {
	if !l.readOnly && !l.roomForIndex("closing") {
		l.log.Warn("store: filesystem full at shutdown; the index is left to replay its write-ahead log at the next start",
			"dir", l.dir, "free_bytes", l.disk.available(true))
		return nil
	}
	return l.db.Close()
}
