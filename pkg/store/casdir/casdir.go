package casdir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// Options are the quota and session settings of a Store, in bytes (the
// buildbox-casd flags --quota-high, --quota-low, --reserved and
// --protect-session-blobs, percentages already resolved by the caller).
type Options struct {
	// QuotaHigh is the usage above which a Put evicts; 0 means no quota.
	QuotaHigh int64
	// QuotaLow is the usage an eviction pass brings the store down to; 0
	// means half of QuotaHigh.
	QuotaLow int64
	// Reserved is the space a Put keeps free on the filesystem, evicting
	// if need be; 0 means none.
	Reserved int64
	// ProtectSessionBlobs keeps every blob used since this store opened
	// (and since any other running protecting store on the directory
	// opened) from eviction.
	ProtectSessionBlobs bool
	// Now is the clock that stamps uses (mtimes) and the session start;
	// nil means time.Now. Every process on a directory must share one
	// clock, so tests only.
	Now func() time.Time
	// DiskFree reports the bytes available on the store's filesystem; nil
	// means statfs. Tests only.
	DiskFree func() (int64, error)
}

// Store is a CAS in buildbox-casd's on-disk layout under one cache
// directory, shared with any other process that opens the same directory.
// It is safe for concurrent use; see the package comment for what it
// shares with other processes and how.
type Store struct {
	root    string // <cachedir>/cas
	objects string
	tmp     string
	state   string // castd's shared state: usage, locks, sessions
	opts    Options
	now     func() time.Time
	free    func() (int64, error)
	session *session // nil without protection
	usage   *usageFile
}

// Open opens (creating it if need be) the store of cacheDir, whose blobs
// live in cacheDir/cas/objects. A directory written by buildbox-casd opens
// as it is; the first open of one walks it once to count its bytes. Open
// writes the empty blob if it is missing and, with ProtectSessionBlobs,
// registers this store's session. Close releases it.
func Open(cacheDir string, opts Options) (*Store, error) {
	root := filepath.Join(cacheDir, "cas")
	s := &Store{
		root: root, objects: filepath.Join(root, "objects"), tmp: filepath.Join(root, "tmp"),
		state: filepath.Join(root, "castd"), opts: opts, now: opts.Now, free: opts.DiskFree,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.free == nil {
		s.free = s.statfsFree
	}
	if s.opts.QuotaLow == 0 {
		s.opts.QuotaLow = s.opts.QuotaHigh / 2
	}
	for _, dir := range []string{s.objects, s.tmp, filepath.Join(s.state, "sessions")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("casdir %s: %w", root, err)
		}
	}
	if err := s.openShared(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openShared opens the usage count, writes the empty blob and starts the
// session.
func (s *Store) openShared() error {
	u, err := openUsage(filepath.Join(s.state, "usage"), s.countObjects)
	if err != nil {
		return fmt.Errorf("casdir %s: usage: %w", s.root, err)
	}
	s.usage = u
	if err := s.ensureEmpty(); err != nil {
		return err
	}
	if s.opts.ProtectSessionBlobs {
		sess, err := registerSession(filepath.Join(s.state, "sessions"), s.now())
		if err != nil {
			return fmt.Errorf("casdir %s: session: %w", s.root, err)
		}
		s.session = sess
	}
	return nil
}

// Close ends this store's session (its blobs may then be evicted by other
// processes) and releases its files. Blobs stay on disk. Calls after the
// first do nothing; the store must not be used after Close.
func (s *Store) Close() error {
	if s.session != nil {
		s.session.end()
		s.session = nil
	}
	if s.usage != nil {
		_ = s.usage.close()
		s.usage = nil
	}
	return nil
}

// Dir is the directory holding the blob files (cacheDir/cas/objects).
func (s *Store) Dir() string { return s.objects }

// Usage returns the bytes of blobs stored, as counted across every
// process on the directory (see the package comment for its precision).
func (s *Store) Usage() (int64, error) { return s.usage.get() }

// Quota returns QuotaHigh (0 when there is none).
func (s *Store) Quota() int64 { return s.opts.QuotaHigh }

// path returns the file of d: objects/<hash[:2]>/<hash[2:]>.
func (s *Store) path(d digest.Digest) string {
	return filepath.Join(s.objects, d.Hash[:2], d.Hash[2:])
}

// ensureEmpty writes the empty blob when it is missing: BuildStream opens
// its file like any other, and it is never evicted.
func (s *Store) ensureEmpty() error {
	if _, err := os.Stat(s.path(digest.Empty)); err == nil {
		return nil
	}
	_, err := s.write(context.Background(), digest.Empty, eofReader{})
	return err
}

// statfsFree returns the bytes available to this user on the filesystem.
func (s *Store) statfsFree() (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// ioError turns a filesystem error into a status naming the operation and
// path: a full disk is RESOURCE_EXHAUSTED, anything else INTERNAL.
func ioError(op, path string, err error) error {
	code := codes.Internal
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		code = codes.ResourceExhausted
	}
	return status.Errorf(code, "casdir: %s %s: %v", op, path, err)
}
