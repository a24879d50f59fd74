package casdir

import (
	"context"
	"errors"
	"hash"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// FindMissing implements store.CAS. Every blob found present is touched
// (its mtime set to now) under the shared use lock before FindMissing
// returns, so no eviction pass removes it from under the answer and, with
// ProtectSessionBlobs, none removes it while a session runs. A file of the
// wrong size is removed and reported missing. The empty blob is always
// present. Cost: two syscalls per digest and one flock per call.
func (s *Store) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return s.presence(digest.NewSet(ds...).Sorted())
}

// presence touches each of ds (distinct digests) under the shared use
// lock and returns those that are missing.
func (s *Store) presence(ds []digest.Digest) ([]digest.Digest, error) {
	unlock, err := s.lockFile("use.lock", unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := s.now()
	var missing []digest.Digest
	for _, d := range ds {
		if d.Func != digest.SHA256 {
			missing = append(missing, d) // never stored here (see Put)
			continue
		}
		ok, err := s.touch(d, now)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, d)
		}
	}
	return missing, nil
}

// touch records a use of d at now and reports whether a file of d's size
// is there. A file of another size is removed (it is damaged). A blob
// already used in this protecting session keeps its time: it is protected
// anyway, and an lstat costs far less than rewriting an inode's times.
func (s *Store) touch(d digest.Digest, now time.Time) (bool, error) {
	if d.IsEmpty() {
		return true, nil
	}
	path := s.path(d)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, ioError("stat", path, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != d.Size {
		s.discard(path, fi)
		return false, nil
	}
	if s.session != nil && !fi.ModTime().Before(s.session.start) {
		return true, nil
	}
	err = os.Chtimes(path, now, now)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case errors.Is(err, fs.ErrPermission):
		// Another user's file cannot take our time: it is present, but
		// its use is not recorded (see the package comment).
		return true, nil
	case err != nil:
		return false, ioError("set the time of", path, err)
	}
	return true, nil
}

// Get implements store.CAS: it touches d and streams its file, hashing
// every byte (the prefix before offset included) and failing the Read that
// would complete a blob whose hash does not match with DATA_LOSS, after
// removing the file. A missing file, or one of the wrong size (removed),
// is NOT_FOUND. A blob evicted while it is read is still read to its end.
func (s *Store) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if offset < 0 || offset > d.Size {
		return nil, status.Errorf(codes.OutOfRange, "blob %s: offset %d is outside 0..%d", d, offset, d.Size)
	}
	if d.Func != digest.SHA256 {
		return nil, status.Errorf(codes.NotFound, "blob %s is not in %s (it holds SHA-256 blobs only)", d, s.objects)
	}
	if d.IsEmpty() {
		return io.NopCloser(eofReader{}), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	path := s.path(d)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "blob %s is not in %s", d, s.objects)
	}
	if err != nil {
		return nil, ioError("open", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ioError("stat", path, err)
	}
	if fi.Size() != d.Size {
		f.Close()
		s.discard(path, fi)
		return nil, status.Errorf(codes.NotFound, "blob %s is not in %s (its file had %d bytes and was removed)", d, s.objects, fi.Size())
	}
	now := s.now()
	_ = os.Chtimes(path, now, now) // a use; a read-only cache directory still serves
	return &verifyingReader{s: s, f: f, fi: fi, d: d, h: digest.NewHasher(), skip: offset}, nil
}

// verifyingReader streams a blob file, hashing it from its first byte. Not
// safe for concurrent use, like any io.Reader.
type verifyingReader struct {
	s    *Store
	f    *os.File
	fi   fs.FileInfo
	d    digest.Digest
	h    hash.Hash
	skip int64 // prefix bytes to hash before serving
	pos  int64 // bytes of the file hashed so far
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	if r.skip > 0 {
		n, err := io.CopyN(r.h, r.f, r.skip)
		r.pos += n
		r.skip = 0
		if err != nil {
			return 0, r.damaged("it ends early")
		}
	}
	left := r.d.Size - r.pos
	if left == 0 {
		return 0, r.check(io.EOF)
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.pos += int64(n)
	if r.pos == r.d.Size {
		// Withhold the last bytes until the whole blob has checked out.
		if cerr := r.check(nil); cerr != nil {
			return 0, cerr
		}
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		return n, r.damaged("it ends early")
	}
	if err != nil {
		return n, ioError("read", r.f.Name(), err)
	}
	return n, nil
}

// check compares the hash of the whole file with the digest: ok returns
// ok, a mismatch is DATA_LOSS.
func (r *verifyingReader) check(ok error) error {
	if digest.HashString(r.h) != r.d.Hash {
		return r.damaged("its bytes do not hash to the digest")
	}
	return ok
}

// damaged removes the blob's file (if it is still this one) and returns
// DATA_LOSS saying why.
func (r *verifyingReader) damaged(why string) error {
	r.s.discard(r.f.Name(), r.fi)
	return status.Errorf(codes.DataLoss, "blob %s in %s is damaged (%s); its file was removed", r.d, r.s.objects, why)
}

func (r *verifyingReader) Close() error { return r.f.Close() }

// discard removes the damaged file at path, whose stat was fi, unless it
// has been replaced meanwhile (by a Put after another discard), and takes
// its bytes off the usage count.
func (s *Store) discard(path string, fi fs.FileInfo) {
	now, err := os.Lstat(path)
	if err != nil || !os.SameFile(now, fi) {
		return
	}
	if os.Remove(path) == nil {
		_ = s.usage.add(-fi.Size())
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
