package casdir

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// copyBufferSize is the size of the buffer Put copies through.
const copyBufferSize = 256 << 10

// Put implements store.CAS. A blob already present is touched (a use) and
// r is not read. Otherwise Put makes room under the quota, writes r to a
// temporary file, checks its size and SHA-256 against d (INVALID_ARGUMENT
// and nothing stored when they differ), and links it into place read-only
// before it returns. A digest of another function than SHA-256 is
// INVALID_ARGUMENT (the layout has no room for it). Concurrent Puts of one digest, in this process or
// another, each write and verify their bytes; the first link wins and the
// others discard their copy.
func (s *Store) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if d.Func != digest.SHA256 {
		return status.Errorf(codes.InvalidArgument, "blob %s: digest function %s is not supported: BuildStream's cache directory %s holds SHA-256 blobs only", d, d.Func, s.objects)
	}
	if d.IsEmpty() {
		return putEmpty(s, r)
	}
	missing, err := s.presence([]digest.Digest{d})
	if err != nil || len(missing) == 0 {
		return err
	}
	if err := s.makeRoom(ctx, d); err != nil {
		return err
	}
	added, err := s.write(ctx, d, r)
	if err != nil || !added {
		return err
	}
	if err := s.usage.add(d.Size); err != nil {
		return status.Errorf(codes.Internal, "casdir %s: usage: %v", s.root, err)
	}
	return nil
}

// putEmpty accepts the empty blob, which is always present, and restores
// its file if something removed it.
func putEmpty(s *Store, r io.Reader) error {
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return status.Errorf(codes.InvalidArgument, "blob %s: the empty digest was sent with data", digest.Empty)
	}
	return s.ensureEmpty()
}

// write stores r as d through a verified temporary file and reports
// whether this call added the blob (false when another writer linked it
// first).
func (s *Store) write(ctx context.Context, d digest.Digest, r io.Reader) (bool, error) {
	f, err := os.CreateTemp(s.tmp, "put-")
	if err != nil {
		return false, ioError("create temp file in", s.tmp, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = fill(ctx, f, d, r)
	if err == nil {
		err = ioErrorIf("chmod", tmp, f.Chmod(0o444))
	}
	if cerr := f.Close(); err == nil {
		err = ioErrorIf("close", tmp, cerr)
	}
	if err != nil {
		return false, err
	}
	now := s.now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		return false, ioError("set the time of", tmp, err)
	}
	return s.publish(tmp, d)
}

// fill copies r into f, hashing it, and checks it against d.
func fill(ctx context.Context, f *os.File, d digest.Digest, r io.Reader) error {
	h := digest.NewHasher()
	w := &errWriter{w: io.MultiWriter(f, h)}
	n, err := io.CopyBuffer(w, io.LimitReader(&ctxReader{ctx: ctx, r: r}, d.Size+1), make([]byte, min(copyBufferSize, d.Size+1)))
	switch {
	case w.err != nil:
		return ioError("write", f.Name(), w.err)
	case err != nil:
		return err
	case n != d.Size:
		return status.Errorf(codes.InvalidArgument, "blob %s: got %d bytes or more, its digest declares %d", d, n, d.Size)
	case digest.HashString(h) != d.Hash:
		return status.Errorf(codes.InvalidArgument, "blob bytes hash to %s, not the declared digest %s", digest.HashString(h), d)
	}
	return nil
}

// publish links the verified file tmp to d's name. A link never replaces
// a file, so an existing blob (which BuildStream may have hardlinked
// elsewhere) stays as it is. Where the filesystem has no hard links, it
// renames instead and counts the blob as added.
func (s *Store) publish(tmp string, d digest.Digest) (bool, error) {
	final := s.path(d)
	err := os.Link(tmp, final)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return false, ioError("create", filepath.Dir(final), err)
		}
		err = os.Link(tmp, final)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	case noLinks(err):
		return true, ioErrorIf("rename into", final, os.Rename(tmp, final))
	}
	return false, ioError("link into", final, err)
}

// noLinks reports whether err says the filesystem does not do hard links.
func noLinks(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

// ctxReader fails reads once ctx is done, so a Put from a stalled client
// ends when its call does.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, status.FromContextError(err).Err()
	}
	return c.r.Read(p)
}

// errWriter records the first write error, to tell it from a read error
// after io.Copy.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// ioErrorIf is ioError when err is not nil.
func ioErrorIf(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return ioError(op, path, err)
}
