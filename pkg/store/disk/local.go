package disk

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures Open. The zero value is an unlimited store with default
// tuning.
type Options struct {
	// QuotaBytes bounds the bytes of stored blobs plus uploads in progress.
	// 0 derives the quota from QuotaPercent; both 0 means unlimited.
	QuotaBytes int64
	// QuotaPercent is the quota as a percentage (0-100) of the size of the
	// filesystem holding the store directory.
	QuotaPercent float64
	// LowWatermark is the fraction of the quota that eviction frees down to
	// once the quota is hit (default 0.8).
	LowWatermark float64
	// ReservedBytes and ReservedPercent (of the filesystem size) are disk
	// space the store always leaves free, whatever the quota; the larger
	// one applies.
	ReservedBytes   int64
	ReservedPercent float64
	// InlineThreshold is the largest blob kept in a pack file rather than
	// as a file of its own (default 16 KiB, at most 256 KiB).
	InlineThreshold int64
	// SyncWrites makes every Put fsync its file and the index before it is
	// acknowledged, so acknowledged writes also survive a power loss. Off
	// by default: a kill -9 never loses acknowledged writes either way.
	// castd sets it from cache.sync-writes.
	SyncWrites bool
	// Ballast keeps 64 MiB allocated in dir/ballast while the filesystem
	// has room, given back when the store opens or closes on a full
	// filesystem so that the index can (see local_ballast.go). castd sets
	// it; stores opened by tests need not.
	Ballast bool
	// Logger receives store events (corruption, eviction); nil discards.
	Logger *slog.Logger
	// Registerer, when set, receives the castd_store_* metrics. They are
	// unregistered on Close.
	Registerer prometheus.Registerer

	packSize int64 // where a pack file is sealed (tests only; default 64 MiB)
}

// Stats is a point-in-time summary of a Local store, for status output.
type Stats struct {
	UsedBytes      int64 // stored blob bytes, uploads in progress, pack garbage
	QuotaBytes     int64 // effective quota; 0 means unlimited
	Objects        int64 // stored blobs
	Evictions      int64 // blobs evicted since Open
	HeldBytes      int64 // bytes of blobs held against eviction (Hold)
	VerifyFailures int64 // corrupt or missing blobs found and dropped since Open
	// WritesRefused is why the store refuses writes ("" while it accepts
	// them): WritesRefusedFull or WritesRefusedReadOnly.
	WritesRefused string
}

// Local is castd's on-disk store: a CAS shared by every instance name plus
// one ActionCache per instance name, in a directory it owns exclusively.
//
// Layout: dir/LOCK (flock, PID of the owner), dir/index (badger: blob
// metadata under 'm'+hash+size — kind, CRC-32C, last use, and for a small
// blob its pack and offset; under 'c' a large blob's chunk sums; action
// results; records), dir/packs/<n>.pack
// (the bytes of blobs of at most InlineThreshold bytes, appended; see
// packSet), dir/cas/ab/<hash>-<size> (larger blobs, read-only files) and
// dir/tmp (uploads in progress, emptied on Open), dir/ballast (space held
// for a full filesystem, see local_ballast.go). Stores written before
// pack files kept small blobs in badger under 'd'+hash+size (some with a
// CRC-32C in front of the bytes); such blobs are still read.
//
// Blobs of every digest function castd knows are stored, each under its
// own function: a SHA-256 blob's keys and file are as above (the layout of
// stores written before other functions, which therefore open unchanged);
// another function's badger keys carry a function byte after the prefix
// and its files live in dir/cas/<function>/ab/ (see blobKey.dbKey and
// blobPath), so blobs of different functions with the same hex never
// meet. Writes verify with the digest's function.
//
// Writes of concurrent Puts are group-committed: one goroutine appends the
// small blobs queued to a pack in one pwritev, then writes every index entry
// queued in one badger transaction, each Put returning only once its own
// entries are committed (see committer). An evicted small blob's bytes stay
// in its pack until compaction rewrites the pack's live blobs (see
// compactPacks); they count toward the quota until then.
//
// Writes are verified (hash and size) before anything becomes visible. A
// large blob streams to a temp file, is renamed into place and only then
// indexed; a crash between those steps leaves a file without an index entry,
// which the background reconciliation after Open deletes. The index and the
// files live in the page cache, so every acknowledged write survives kill -9.
// Without Options.SyncWrites a power loss may lose the last seconds of writes
// or leave a file short or zeroed; read verification then drops it.
//
// Reads are verified against a CRC-32C recorded when the verified bytes were
// stored (hashing them again would cost more than the read itself; CRC-32C
// is hardware accelerated and catches disk corruption, truncation and
// zeroed pages).
// Small (packed) blobs are checked before Get returns. File blobs are checked
// while streaming, one CRC-32C per MiB recorded at Put (under 'c' in the
// index): each chunk is checked before any of its bytes is returned, so a
// corrupt file fails the Read of its first bad chunk with DATA_LOSS and a
// reader only ever gets verified bytes (the fan-out then completes the
// stream from a remote). Files stored before chunk sums are checked against
// one CRC over the whole file: their last Read fails instead (an offset read
// checks the prefix too). A corrupt or missing blob is deleted, logged,
// counted in castd_store_verify_failures_total and is NOT_FOUND from then
// on. Scrub verifies every stored blob in the background.
//
// Quota: usage is stored blob bytes plus uploads in progress plus pack
// bytes of deleted small blobs not yet compacted away. A Put that would
// exceed the quota (or eat into the reserved disk space) first compacts the
// packs that are mostly garbage, then evicts the least recently used
// unpinned blobs down to LowWatermark of it and compacts again; FindMissing,
// Get and Put all count as use. Recency lives in memory and is persisted
// every recencyFlushInterval and on Close.
//
// A full filesystem (another process may fill it): while a write would
// leave less than minFreeBytes free it is refused with RESOURCE_EXHAUSTED,
// before any eviction, and background writes pause; reads go on. Opened on
// a filesystem so full that even the ballast cannot give the index room,
// the store is read-only (writes FAILED_PRECONDITION) until it is opened
// again with space. See local_space.go and local_ballast.go.
//
// Open returns at once; the in-memory index is rebuilt in the background
// (misses consult badger meanwhile, eviction waits for it), then orphans are
// reconciled. Ready reports when both are done. Safe for concurrent use.
type Store struct {
	dir, casDir, tmpDir string
	log                 *slog.Logger
	lockFile            *os.File
	db                  *badger.DB
	packs               *packSet
	commits             *committer
	bufs                sync.Pool // *[]byte of inline bytes, see inlineBuf
	ix                  *index
	quota               atomic.Int64 // 0 = unlimited; SetQuota replaces it
	reserved            int64
	inline              int64
	low                 float64
	syncWrites          bool
	directOff           atomic.Bool // the file system refused O_DIRECT (logged once)
	disk                diskSpace
	readOnly            bool        // opened read-only on a full filesystem; see spaceFor
	ballast             bool        // Options.Ballast
	diskFull            atomic.Bool // the last write found too little free space
	evictMu             sync.Mutex

	pending                   atomic.Int64 // bytes reserved by uploads in progress
	evictions, verifyFailures atomic.Int64
	scrubbed, scrubCorrupt    atomic.Int64 // blobs checked by Scrub; found bad by it
	compactions, movedBytes   atomic.Int64 // packs compacted away; live bytes they rewrote
	putBytes, getBytes        atomic.Int64
	flushedTick               atomic.Uint64 // clock value up to which recency is persisted

	loaded   chan struct{} // closed when the in-memory index is complete
	ready    chan struct{} // closed when reconciliation is done too
	stop     chan struct{}
	wg       sync.WaitGroup
	metrics  *storeMetrics
	closeErr error
	once     sync.Once
}

// Open opens (creating if needed) the store in dir and takes its lock. It
// fails at once if another process holds the directory, naming its PID, and
// with an error naming the path if the directory is not writable. Open does
// not scan the store before returning; see Local.
func Open(dir string, opts Options) (*Store, error) {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := newLocal(dir, opts, lock)
	if err := l.init(opts); err != nil {
		l.releaseLock()
		return nil, err
	}
	l.wg.Add(3)
	go l.loadAndReconcile()
	go func() { defer l.wg.Done(); l.commits.run(l.stop) }()
	go l.flushLoop()
	return l, nil
}

func newLocal(dir string, opts Options, lock *os.File) *Store {
	l := &Store{
		dir: dir, casDir: filepath.Join(dir, "cas"), tmpDir: filepath.Join(dir, "tmp"),
		log: opts.Logger, lockFile: lock, ix: newIndex(),
		inline: opts.InlineThreshold, low: opts.LowWatermark, syncWrites: opts.SyncWrites, ballast: opts.Ballast,
		loaded: make(chan struct{}), ready: make(chan struct{}), stop: make(chan struct{}),
	}
	l.flushedTick.Store(l.ix.clock.Load())
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.inline <= 0 {
		l.inline = 16 << 10
	}
	l.inline = min(l.inline, 256<<10)
	if l.low <= 0 || l.low > 1 {
		l.low = 0.8
	}
	return l
}

// init prepares the directories, opens badger, sizes the quota and registers
// metrics.
func (l *Store) init(opts Options) error {
	if err := l.sizeQuota(opts); err != nil {
		return err
	}
	l.readOnly = !l.roomForIndex("opening")
	if err := l.prepareDirs(); err != nil && !(l.readOnly && isNoSpace(err)) {
		return err
	}
	db, err := l.openIndex()
	if err != nil {
		return err
	}
	l.db = db
	l.keepBallast()
	packs, err := l.openPacks(opts.packSize)
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("store directory %s: %w", l.dir, err)
	}
	l.packs = packs
	l.ix.accountPack = packs.account
	l.commits = newCommitter(db, packs, l.ix)
	if opts.Registerer != nil {
		m, err := registerMetrics(l, opts.Registerer)
		if err != nil {
			_ = db.Close()
			packs.close()
			return fmt.Errorf("store %s: register metrics: %w", l.dir, err)
		}
		l.metrics = m
	}
	return nil
}

// badgerOptions tunes badger for a small memory footprint: metadata (a few
// dozen bytes a blob) stays in the LSM tree, so loading the index reads no
// blob bytes; larger values (action results) go to the value log. Blob
// bytes never pass through badger.
func badgerOptions(path string, log *slog.Logger, sync bool) badger.Options {
	return badger.DefaultOptions(path).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(sync).
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(256).
		WithNumCompactors(2).
		WithDetectConflicts(false).
		WithCompression(options.None).
		WithMetricsEnabled(false)
}

// Ready is closed once the in-memory index has been rebuilt and orphaned
// files and index entries from a crash have been cleaned up. The store
// serves correctly before that; Ready is for status output and tests.
func (l *Store) Ready() <-chan struct{} { return l.ready }

// TempDir is the store's directory for files being written, Uploads'
// included. Open empties it, so a crash leaves nothing behind there;
// others may keep temp files of their own in it. It is on the store's
// file system.
func (l *Store) TempDir() string { return l.tmpDir }

// Stats returns current usage counters. Cheap; safe for concurrent use.
func (l *Store) Stats() Stats {
	return Stats{
		UsedBytes:      l.ix.bytes.Load() + l.pending.Load(),
		QuotaBytes:     l.quota.Load(),
		Objects:        l.ix.objects.Load(),
		Evictions:      l.evictions.Load(),
		HeldBytes:      l.HeldBytes(),
		VerifyFailures: l.verifyFailures.Load(),
		WritesRefused:  l.writesRefusedReason(),
	}
}

// Close persists recency, closes the index and releases the directory lock.
// Readers already returned by Get keep working for file blobs; Puts still in
// progress fail. Close is idempotent.
func (l *Store) Close() error {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		var err error
		if !l.writesPaused() {
			err = l.flushRecency()
		}
		if cerr := l.closeIndex(); err == nil && cerr != nil {
			err = fmt.Errorf("store %s: close index: %w", l.dir, cerr)
		}
		l.packs.close()
		if l.metrics != nil {
			l.metrics.unregister()
		}
		l.releaseLock()
		l.closeErr = err
	})
	return l.closeErr
}

func (l *Store) releaseLock() {
	_ = l.lockFile.Close() // closing the descriptor drops the flock
}
