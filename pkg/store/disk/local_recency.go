package disk

import (
	"fmt"
	"time"
)

// recencyFlushInterval is how often flushLoop runs.
const recencyFlushInterval = time.Minute

// flushLoop persists recency and reclaims the space of deleted small blobs
// (pack compaction, badger's value log) every recencyFlushInterval until
// Close.
func (l *Store) flushLoop() {
	defer l.wg.Done()
	t := time.NewTicker(recencyFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.writesPaused() {
				continue // recency stays in memory; flushed once writes resume
			}
			l.keepBallast()
			if err := l.flushRecency(); err != nil {
				l.log.Warn("store: persisting recency", "error", err)
			}
			l.compactPacks()
			for l.db.RunValueLogGC(0.5) == nil && !l.stopping() {
			}
		}
	}
}

// flushRecency rewrites the metadata of blobs used since the last flush, so
// LRU order survives a restart. Cost: one small badger write per such blob,
// batched; nothing when the store was idle.
func (l *Store) flushRecency() error {
	// Deletions wait, so a flush never resurrects a blob deleted meanwhile.
	l.evictMu.Lock()
	defer l.evictMu.Unlock()
	since := l.flushedTick.Load()
	now := l.ix.clock.Load()
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	for i := range l.ix.shards {
		s := &l.ix.shards[i]
		s.mu.Lock()
		var err error
		s.each(func(k blobKey, e entry) bool {
			if e.tick > since {
				err = wb.Set(k.dbKey('m'), encodeMeta(e, e.tick))
			}
			return err == nil
		})
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("store %s: persist recency: %w", l.dir, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store %s: persist recency: %w", l.dir, err)
	}
	l.flushedTick.Store(now)
	return nil
}
