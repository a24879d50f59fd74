package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// Spooler is an optional capability of a CAS that takes a streamed upload
// in as it arrives: the local store, whose Upload hashes and checksums the
// bytes as they are written into its temp directory and whose Commit
// stores the blob by renaming that file into place, so a large upload is
// written to disk once. The ByteStream server spools into it and then
// passes the committed blob to its CAS chain with Put (see Upload.Open), so
// that decorators (write-back queueing, write-through) still see the write
// while the local store, finding the blob stored, reads nothing again. A
// CAS without it is given TempSpooler's uploads. Implementations are safe
// for concurrent use.
type Spooler interface {
	// NewUpload starts an empty upload of d.
	NewUpload(d digest.Digest) (*Upload, error)
}

// NewUpload implements Spooler. It refuses, with the store's usual
// errors, a malformed digest, a read-only store or a full filesystem
// (RESOURCE_EXHAUSTED, see spaceFor), before creating the file. The
// bytes written count as uploads in progress against the quota, as
// they arrive (not the whole blob up front), until Commit or Abort: the
// store evicts to make room for them as for a Put.
func (l *Store) NewUpload(d digest.Digest) (*Upload, error) {
	k, ok := keyOf(d)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "digest %s: malformed hash", d)
	}
	if err := l.spaceFor(0); err != nil {
		return nil, err
	}
	u, err := newUpload(l.tmpDir, k)
	if err != nil {
		return nil, l.noSpace(0, err, ioError("create upload file in", l.tmpDir, err))
	}
	u.l = l
	return u, nil
}

// TempSpooler returns a Spooler whose uploads are plain files in dir,
// for a CAS that is not a Spooler: their Commit only verifies the bytes,
// and Open reads the file back for the CAS's Put, which stores it.
func TempSpooler(dir string) Spooler { return tempSpooler(dir) }

type tempSpooler string

func (dir tempSpooler) NewUpload(d digest.Digest) (*Upload, error) {
	k, ok := keyOf(d)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "digest %s: malformed hash", d)
	}
	u, err := newUpload(string(dir), k)
	if err != nil {
		return nil, ioError("create upload file in", string(dir), err)
	}
	return u, nil
}

// Upload is a blob being received into a file of its own: written in
// order, possibly over several streams (a client resuming at Size), then
// committed or aborted. It keeps the hash (under the digest's function),
// the CRC-32C and the chunk sums (see chunkSums) of what was written, so
// Commit neither reads nor copies the bytes. Between streams it holds no fd (Suspend). Size is safe
// for concurrent use; the other methods are for one goroutine at a time.
type Upload struct {
	l     *Store // nil for a TempSpooler upload
	k     blobKey
	path  string
	f     *os.File // open while being written
	size  atomic.Int64
	sha   hash.Hash   // the digest's function
	crc   hash.Hash32 // of the whole blob
	part  uint32      // CRC-32C of the last, incomplete chunk
	sums  []byte      // of the complete chunks
	state uploadState
	// counted is what of the file the local store counts as an upload
	// in progress (Local.pending).
	counted int64
}

type uploadState int

const (
	uploadOpen      uploadState = iota
	uploadCommitted             // stored (Local) or verified (TempSpooler)
	uploadGone                  // aborted or refused: no file
)

// noSpace is the error for a write of size bytes that failed with cause
// (err is cause as a status): when the filesystem refused it for lack of
// space although spaceFor let it through (another process took the space
// meanwhile), spaceFor's "filesystem full" with the free space read
// afresh; else err.
func (l *Store) noSpace(size int64, cause, err error) error {
	if !isNoSpace(cause) {
		return err
	}
	l.disk.available(true)
	if serr := l.spaceFor(size); serr != nil {
		return serr
	}
	return err
}

func newUpload(dir string, k blobKey) (*Upload, error) {
	f, err := os.CreateTemp(dir, "upload-")
	if err != nil {
		return nil, err
	}
	return &Upload{k: k, path: f.Name(), f: f, sha: k.fn.NewHasher(), crc: crc32.New(castagnoli),
		sums: make([]byte, 0, 4*chunkCount(k.size))}, nil
}

// Size is the number of bytes written: where the next Write goes, and the
// committed_size to report to a client resuming the upload.
func (u *Upload) Size() int64 { return u.size.Load() }

// Write appends p, reopening the file after Suspend. Bytes past the
// digest's size are INVALID_ARGUMENT. For the local store, p first gets
// room within the quota (evicting least recently used blobs if need be;
// the errors are Put's), then the free-space guard: a full filesystem is
// the store's RESOURCE_EXHAUSTED "filesystem full" (checked before
// writing, so spooling never eats into the space the store keeps free,
// and mapped from ENOSPC). On error the bytes written so far still count:
// Size says where to resume.
func (u *Upload) Write(p []byte) (int, error) {
	if u.state != uploadOpen {
		return 0, status.Errorf(codes.FailedPrecondition, "upload of %s: write after commit or abort", u.k.digest())
	}
	off := u.size.Load()
	if off+int64(len(p)) > u.k.size {
		return 0, status.Errorf(codes.InvalidArgument, "blob %s: more than the %d bytes its digest declares", u.k.digest(), u.k.size)
	}
	if err := u.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	if err := u.open(); err != nil {
		u.uncount(int64(len(p)))
		return 0, err
	}
	n, err := u.f.WriteAt(p, off)
	u.uncount(int64(len(p) - n))
	u.sum(p[:n])
	u.size.Add(int64(n))
	switch {
	case err == nil:
		return n, nil
	case u.l != nil:
		return n, u.l.noSpace(int64(len(p)-n), err, ioError("write", u.path, err))
	default:
		return n, ioError("write", u.path, err)
	}
}

// reserve counts n more bytes of the file against the local store's
// quota, making room if need be, and checks the free-space guard.
func (u *Upload) reserve(n int64) error {
	if u.l == nil {
		return nil
	}
	if err := u.l.reserveSpool(u.k, n); err != nil {
		return err
	}
	u.counted += n
	if err := u.l.spaceFor(n); err != nil {
		u.uncount(n)
		return err
	}
	return nil
}

// uncount stops counting n bytes against the local store's quota.
func (u *Upload) uncount(n int64) {
	if u.l != nil && n != 0 {
		u.l.pending.Add(-n)
		u.counted -= n
	}
}

// open reopens the file after Suspend.
func (u *Upload) open() error {
	if u.f != nil {
		return nil
	}
	f, err := os.OpenFile(u.path, os.O_RDWR, 0)
	if err != nil {
		return ioError("reopen", u.path, err)
	}
	u.f = f
	return nil
}

// sum feeds b, the bytes just written, to the hashes, closing a chunk's
// CRC at every chunkSize boundary (the chunks readers verify).
func (u *Upload) sum(b []byte) {
	u.sha.Write(b)
	u.crc.Write(b)
	off := u.size.Load()
	for len(b) > 0 {
		n := min(len(b), int(chunkSize-off%chunkSize))
		u.part = crc32.Update(u.part, castagnoli, b[:n])
		b, off = b[n:], off+int64(n)
		if off%chunkSize == 0 || off == u.k.size {
			u.sums = binary.BigEndian.AppendUint32(u.sums, u.part)
			u.part = 0
		}
	}
}

// Suspend closes the file, so an upload waiting to be resumed holds no
// fd; the next Write reopens it.
func (u *Upload) Suspend() {
	if u.f != nil {
		_ = u.f.Close()
		u.f = nil
	}
}

// Commit checks that the bytes written are the blob's (else
// INVALID_ARGUMENT, and the file is removed) and stores it: for the local
// store, exactly as Put ends for a blob of that size (room made within the
// quota, the free-space guard, the index entry with its chunk sums,
// metrics), by renaming the file into place; a blob stored meanwhile makes
// it a success that drops the file. A committed upload commits again as a
// no-op. On another error (the context, a full disk) the upload stays as
// it was, so Commit may be retried.
func (u *Upload) Commit(ctx context.Context) error {
	switch u.state {
	case uploadCommitted:
		return nil
	case uploadGone:
		return status.Errorf(codes.FailedPrecondition, "upload of %s: commit after abort", u.k.digest())
	}
	if err := u.verify(); err != nil {
		u.Abort()
		return err
	}
	if u.l != nil {
		if err := u.l.commitUpload(ctx, u); err != nil {
			return err
		}
	}
	u.state = uploadCommitted
	return nil
}

// verify checks the size and hash (under the digest's function) of what
// was written.
func (u *Upload) verify() error {
	if n := u.size.Load(); n != u.k.size {
		return sizeMismatch(u.k, n)
	}
	if !bytes.Equal(u.sha.Sum(nil), u.k.raw()) {
		return status.Errorf(codes.InvalidArgument, "blob bytes do not hash to the declared digest %s", u.k.digest())
	}
	return nil
}

// Open returns a reader of the committed blob, to pass it on with the
// CAS's Put. For the local store it holds the blob against eviction until
// Close and opens it only at the first Read, which a Put that finds the
// blob stored never makes; for a TempSpooler upload it reads the file.
func (u *Upload) Open(ctx context.Context) (io.ReadCloser, error) {
	if u.state != uploadCommitted {
		return nil, status.Errorf(codes.FailedPrecondition, "upload of %s: open before commit", u.k.digest())
	}
	if u.l != nil {
		return u.l.pinnedReader(ctx, u.k)
	}
	f, err := os.Open(u.path)
	if err != nil {
		return nil, ioError("open", u.path, err)
	}
	return f, nil
}

// Abort closes and removes the file, unless the local store has taken it.
// Idempotent; it ends a TempSpooler upload after Commit too.
func (u *Upload) Abort() {
	u.Suspend()
	if u.state == uploadGone || (u.state == uploadCommitted && u.l != nil) {
		return
	}
	u.state = uploadGone
	_ = os.Remove(u.path)
	u.uncount(u.counted)
}
