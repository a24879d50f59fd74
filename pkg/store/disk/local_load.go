package disk

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/castd/castd/pkg/digest"
)

// testHookLoadStart, when set by a test, runs before the index load starts.
var testHookLoadStart func()

// loadAndReconcile rebuilds the in-memory index from badger's metadata keys
// (small, contiguous, no blob bytes), then deletes orphans a crash left.
func (l *Store) loadAndReconcile() {
	defer l.wg.Done()
	defer close(l.ready)
	start := time.Now()
	if testHookLoadStart != nil {
		testHookLoadStart()
	}
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'m'}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if l.stopping() {
				return nil
			}
			l.adoptItem(it.Item())
		}
		return nil
	})
	l.ix.loadDone()
	close(l.loaded)
	if err != nil {
		l.log.Error("store: loading the index failed; blobs not yet loaded are invisible", "dir", l.dir, "error", err)
		return
	}
	l.log.Info("store: index loaded", "dir", l.dir, "objects", l.ix.objects.Load(), "bytes", l.ix.bytes.Load(), "took", time.Since(start))
	if l.readOnly {
		return // reconciliation deletes; it runs at the next read-write start
	}
	for i := 0; i < 256 && !l.stopping(); i++ {
		l.reconcileShard(i)
	}
	if !l.stopping() {
		l.reconcilePacks()
		l.compactPacks()
	}
}

func (l *Store) adoptItem(item *badger.Item) {
	k, ok := keyFromDB(item.Key())
	if !ok {
		return
	}
	_ = item.Value(func(v []byte) error {
		if e, ok := decodeMeta(v); ok {
			l.ix.adopt(k, e)
		}
		return nil
	})
}

func (l *Store) stopping() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// reconcileShard deletes files in the fan-out directories <i> of dir/cas
// (SHA-256) and dir/cas/<function>/ (the others) that have no index entry,
// and index entries of file blobs whose file is gone. Keys being written
// or deleted are left alone; whatever is acted on is claimed first.
func (l *Store) reconcileShard(i int) {
	onDisk := map[blobKey]bool{}
	for _, f := range digest.Functions {
		sub := l.fanoutDir(f, strconvHex(i))
		names, err := os.ReadDir(sub)
		if err != nil {
			if f == digest.SHA256 || !errors.Is(err, fs.ErrNotExist) {
				l.log.Error("store: reconcile", "dir", sub, "error", err)
			}
			continue
		}
		for _, de := range names {
			k, ok := parseFileName(f, de.Name())
			if !ok {
				l.log.Warn("store: removing a stray file", "path", filepath.Join(sub, de.Name()))
				_ = os.Remove(filepath.Join(sub, de.Name()))
				continue
			}
			onDisk[k] = true
		}
	}
	orphans, lost := l.claimOrphans(&l.ix.shards[i], onDisk)
	for _, k := range orphans {
		l.log.Warn("store: removing a blob file without index entry", "path", l.blobPath(k))
		_ = os.Remove(l.blobPath(k))
		l.ix.release(k)
	}
	for _, k := range lost {
		// A Put may have published k after ReadDir; its file exists then.
		if _, err := os.Stat(l.blobPath(k)); os.IsNotExist(err) {
			_ = l.discard(k, "blob file is missing")
		}
	}
}

// claimOrphans returns the files without entry (claimed) and the file
// entries without a file.
func (l *Store) claimOrphans(s *shard, onDisk map[blobKey]bool) (orphans, lost []blobKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range onDisk {
		_, known := s.get(k)
		_, busy := s.busyCh(k)
		if !known && !busy {
			s.setBusy(k, make(chan struct{}))
			orphans = append(orphans, k)
		}
	}
	s.each(func(k blobKey, e entry) bool {
		if !e.inline && !onDisk[k] {
			lost = append(lost, k)
		}
		return true
	})
	return orphans, lost
}

func strconvHex(i int) string {
	const hexDigits = "0123456789abcdef"
	return string([]byte{hexDigits[i>>4], hexDigits[i&15]})
}

// parseFileName inverts blobKey.fileName for a file of function f.
func parseFileName(f digest.Function, name string) (blobKey, bool) {
	h, sz, ok := strings.Cut(name, "-")
	size, err := strconv.ParseInt(sz, 10, 64)
	if !ok || err != nil || len(h) != f.HashLength() || size < 0 {
		return blobKey{}, false
	}
	k, ok := keyOf(digest.Digest{Hash: h, Size: size, Func: f})
	return k, ok && k.fileName() == name
}
