package casdir

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// batchSize is how many blobs a pass removes per hold of the exclusive
// use lock: FindMissing waits for at most one batch.
const batchSize = 256

// staleTemp is the age after which a pass removes a temporary file: a
// write still in progress keeps its file's mtime fresh.
const staleTemp = time.Hour

// testHookAfterScan, when set (by tests only), runs between a pass's scan
// and its removals: where another process's use races the pass.
var testHookAfterScan func()

// object is one blob file as a pass found it.
type object struct {
	path  string
	size  int64
	mtime time.Time
}

// maxRoomRounds bounds the passes one Put runs: other writers may fill
// the room a pass made before this one takes it.
const maxRoomRounds = 4

// makeRoom evicts, if need be, so that d fits under QuotaHigh and leaves
// Reserved bytes free. A blob larger than the quota is FAILED_PRECONDITION
// (it never fits); a store whose remaining blobs are all protected is
// RESOURCE_EXHAUSTED ("cache too full" to BuildStream).
func (s *Store) makeRoom(ctx context.Context, d digest.Digest) error {
	if q := s.opts.QuotaHigh; q > 0 && d.Size > q {
		return status.Errorf(codes.FailedPrecondition, "casdir %s: blob %s is larger than the quota of %d bytes", s.root, d, q)
	}
	if s.opts.QuotaHigh == 0 && s.opts.Reserved == 0 {
		return nil // no limit to check
	}
	full := false
	for round := 0; ; round++ {
		used, target, err := s.countedTarget(d.Size)
		if err != nil || target >= used {
			return err
		}
		// Stop when a pass found only protected blobs left, or after a
		// few passes whose room other writers kept taking first.
		if full || round == maxRoomRounds {
			return status.Errorf(codes.ResourceExhausted, "casdir %s: cache too full: %d bytes stored (quota %d, %d to keep free on disk) and nothing more can be evicted now (blobs of running sessions are protected); cannot store %s", s.root, used, s.opts.QuotaHigh, s.opts.Reserved, d)
		}
		if full, err = s.evict(ctx, d.Size); err != nil {
			return err
		}
	}
}

// countedTarget is target for the shared usage count.
func (s *Store) countedTarget(size int64) (used, target int64, err error) {
	used, err = s.usage.get()
	if err != nil {
		return 0, 0, status.Errorf(codes.Internal, "casdir %s: usage: %v", s.root, err)
	}
	target, err = s.target(used, size)
	return used, target, err
}

// target returns the usage a pass should bring a store using used bytes
// down to for size more bytes to fit (used itself when they fit). Over
// QuotaHigh it is QuotaLow. Short of Reserved free bytes it is the usage
// less the shortfall and a margin (the quota's high-low gap, or a tenth of
// Reserved without a quota), so that the next Put does not start a pass
// again.
func (s *Store) target(used, size int64) (int64, error) {
	target := used
	if q := s.opts.QuotaHigh; q > 0 && used+size > q {
		target = min(s.opts.QuotaLow, q-size)
	}
	if s.opts.Reserved > 0 {
		free, err := s.free()
		if err != nil {
			return 0, ioError("statfs", s.root, err)
		}
		if short := s.opts.Reserved + size - free; short > 0 {
			margin := s.opts.Reserved / 10
			if s.opts.QuotaHigh > 0 {
				margin = s.opts.QuotaHigh - s.opts.QuotaLow
			}
			target = min(target, used-short-margin)
		}
	}
	return target, nil
}

// evict runs one eviction pass for a Put of size bytes, unless the pass of
// another goroutine or process that it waited for has made room already.
// It reports full when the pass could not free what it had to (only
// protected blobs are left). See the package comment for the protocol.
func (s *Store) evict(ctx context.Context, size int64) (full bool, err error) {
	unlock, err := s.lockFile("evict.lock", unix.LOCK_EX)
	if err != nil {
		return false, err
	}
	defer unlock()
	before, target, err := s.countedTarget(size)
	if err != nil || target >= before {
		return false, err
	}
	objs, total, err := s.scan()
	if err != nil {
		return false, err
	}
	if testHookAfterScan != nil {
		testHookAfterScan()
	}
	if target, err = s.target(total, size); err != nil {
		return false, err
	}
	freed, err := s.removeOldest(ctx, objs, total-target)
	// The recount replaces the shared count; what others added or
	// discarded during the pass stays counted on top.
	uerr := s.usage.update(func(n int64, _ bool) (int64, error) { return max(total-freed+n-before, 0), nil })
	if err == nil && uerr != nil {
		err = status.Errorf(codes.Internal, "casdir %s: usage: %v", s.root, uerr)
	}
	s.sweepTemp()
	return freed < total-target, err
}

// removeOldest removes blobs of objs, least recently used first, until
// want bytes are freed or only protected blobs are left, and returns the
// bytes freed. It lists the live sessions only now, after the scan (see
// the package comment), and removes in batches under the exclusive use
// lock, skipping a blob whose mtime changed since the scan (it was used).
func (s *Store) removeOldest(ctx context.Context, objs []object, want int64) (int64, error) {
	since, protect, err := protectedSince(filepath.Join(s.state, "sessions"))
	if err != nil {
		return 0, ioError("list sessions in", s.state, err)
	}
	slices.SortFunc(objs, func(a, b object) int { return a.mtime.Compare(b.mtime) })
	if protect {
		// Sorted by mtime: the protected blobs are the tail.
		objs = objs[:countBefore(objs, since)]
	}
	var freed int64
	for len(objs) > 0 && freed < want {
		if err := ctx.Err(); err != nil {
			return freed, status.FromContextError(err).Err()
		}
		n := min(len(objs), batchSize)
		f, err := s.removeBatch(objs[:n], want-freed)
		freed += f
		if err != nil {
			return freed, err
		}
		objs = objs[n:]
	}
	return freed, nil
}

// countBefore returns how many of objs (sorted by mtime) are older than t.
func countBefore(objs []object, t time.Time) int {
	n, _ := slices.BinarySearchFunc(objs, t, func(o object, t time.Time) int {
		if o.mtime.Before(t) {
			return -1
		}
		return 1
	})
	return n
}

// removeBatch removes the blobs of batch, until want bytes are freed,
// under the exclusive use lock.
func (s *Store) removeBatch(batch []object, want int64) (int64, error) {
	unlock, err := s.lockFile("use.lock", unix.LOCK_EX)
	if err != nil {
		return 0, err
	}
	defer unlock()
	var freed int64
	for _, o := range batch {
		if freed >= want {
			break
		}
		fi, err := os.Lstat(o.path)
		if err != nil || !fi.ModTime().Equal(o.mtime) {
			continue // gone, or used since the scan
		}
		if os.Remove(o.path) == nil {
			freed += o.size
		}
	}
	return freed, nil
}

// scan lists every blob file but the empty blob's, and returns them with
// the total bytes of all blob files. Cost: one lstat per blob.
func (s *Store) scan() ([]object, int64, error) {
	dirs, err := readDirNames(s.objects)
	if err != nil {
		return nil, 0, ioError("list", s.objects, err)
	}
	empty := s.path(digest.Empty)
	var objs []object
	var total int64
	for _, dir := range dirs {
		if len(dir) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.objects, dir))
		if err != nil {
			continue // not a directory, or removed meanwhile
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			path := filepath.Join(s.objects, dir, e.Name())
			total += fi.Size()
			if path != empty {
				objs = append(objs, object{path: path, size: fi.Size(), mtime: fi.ModTime()})
			}
		}
	}
	return objs, total, nil
}

// countObjects is the total bytes of the blob files, for a directory with
// no usage count yet.
func (s *Store) countObjects() (int64, error) {
	_, total, err := s.scan()
	return total, err
}

// sweepTemp removes temporary files left by writers that died: files in
// cas/tmp not modified for staleTemp (on the system clock, which is what
// stamps a file being written).
func (s *Store) sweepTemp() {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTemp {
			_ = os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
}

// lockFile takes an flock (LOCK_SH or LOCK_EX) on cas/castd/name through a
// file opened for this call, so that it excludes other goroutines of this
// process as well as other processes. unlock releases it.
func (s *Store) lockFile(name string, how int) (unlock func(), err error) {
	path := filepath.Join(s.state, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, ioError("open", path, err)
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, ioError("flock", path, err)
	}
	return func() { f.Close() }, nil
}
