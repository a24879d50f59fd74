package disk

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// prepareDirs empties dir/tmp (uploads a crash interrupted) and makes sure
// the 256 fan-out directories of dir/cas exist, so Put never has to.
func (l *Store) prepareDirs() error {
	if err := os.RemoveAll(l.tmpDir); err != nil {
		return fmt.Errorf("store directory %s: clean %s: %w", l.dir, l.tmpDir, err)
	}
	if err := os.Mkdir(l.tmpDir, 0o700); err != nil {
		return fmt.Errorf("store directory %s: create %s: %w", l.dir, l.tmpDir, err)
	}
	for i := 0; i < 256; i++ {
		sub := filepath.Join(l.casDir, fmt.Sprintf("%02x", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("store directory %s: create %s: %w", l.dir, sub, err)
		}
	}
	return nil
}

// sizeQuota turns the percentage options into bytes using the size of the
// filesystem holding the store.
func (l *Store) sizeQuota(opts Options) error {
	var st unix.Statfs_t
	if err := unix.Statfs(l.dir, &st); err != nil {
		return fmt.Errorf("store directory %s: statfs: %w", l.dir, err)
	}
	total := float64(st.Blocks) * float64(st.Bsize)
	l.quota.Store(quotaBytes(opts.QuotaBytes, opts.QuotaPercent, total))
	l.reserved = max(opts.ReservedBytes, int64(total*opts.ReservedPercent/100))
	l.disk.dir = l.dir
	return nil
}

// quotaBytes is the quota in bytes: bytes when set, else percent of the
// filesystem's total bytes; 0 is unlimited.
func quotaBytes(bytes int64, percent, total float64) int64 {
	if bytes <= 0 && percent > 0 {
		return int64(total * percent / 100)
	}
	return max(bytes, 0)
}

// SetQuota replaces the quota (as Options.QuotaBytes and QuotaPercent
// say) while the store serves; a configuration reload calls it. Writes
// from now on are held to it: a lower quota evicts down to it on the next
// write that needs room. It costs one statfs. Safe for concurrent use.
func (l *Store) SetQuota(bytes int64, percent float64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(l.dir, &st); err != nil {
		return fmt.Errorf("store directory %s: statfs: %w", l.dir, err)
	}
	l.quota.Store(quotaBytes(bytes, percent, float64(st.Blocks)*float64(st.Bsize)))
	return nil
}

// diskSpace caches the free space of the store's filesystem for a short
// while, so small Puts do not pay a statfs each.
type diskSpace struct {
	dir     string
	free    atomic.Int64
	checked atomic.Int64 // unix nanos of the last statfs
}

// available returns the bytes available to us; fresh forces a statfs.
func (s *diskSpace) available(fresh bool) int64 {
	now := time.Now().UnixNano()
	if !fresh && now-s.checked.Load() < int64(100*time.Millisecond) {
		return s.free.Load()
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return s.free.Load()
	}
	free := int64(st.Bavail) * st.Bsize
	s.free.Store(free)
	s.checked.Store(now)
	return free
}

// limit is the usage the store may reach now: the quota, lowered so that the
// reserved disk space stays free. -1 means unlimited.
func (l *Store) limit(fresh bool) int64 {
	lim := l.quota.Load()
	if lim == 0 {
		lim = -1
	}
	if l.reserved > 0 {
		byDisk := l.usage() + l.disk.available(fresh) - l.reserved
		if lim < 0 || byDisk < lim {
			lim = max(byDisk, 0)
		}
	}
	return lim
}

// usage is what the store occupies and the quota bounds: stored blobs,
// uploads in progress, and pack bytes no blob uses any more (until
// compaction removes them; known once the index is loaded).
func (l *Store) usage() int64 {
	u := l.ix.bytes.Load() + l.pending.Load()
	if !l.ix.loading.Load() {
		u += l.packs.garbage()
	}
	return u
}

// ioError turns a filesystem error into a status naming the path: a full
// disk is RESOURCE_EXHAUSTED (space may come back), a read-only or
// unwritable store FAILED_PRECONDITION, anything else INTERNAL.
func ioError(what, path string, err error) error {
	code := codes.Internal
	switch {
	case isNoSpace(err):
		return &fullError{s: status.Newf(codes.ResourceExhausted, "store: %s %s: %v", what, path, err), cause: err}
	case errors.Is(err, unix.EROFS), errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		code = codes.FailedPrecondition
	}
	return status.Errorf(code, "store: %s %s: %v", what, path, err)
}

// badgerLogger routes badger's warnings and errors to slog and drops its
// chatter.
type badgerLogger struct{ log *slog.Logger }

func (b badgerLogger) Errorf(f string, v ...any) {
	b.log.Error("badger: " + fmt.Sprintf(f, v...))
}
func (b badgerLogger) Warningf(f string, v ...any) {
	b.log.Warn("badger: " + fmt.Sprintf(f, v...))
}
func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
