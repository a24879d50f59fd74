package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/status"
)

// A file blob is verified chunk by chunk: Put records a CRC-32C for every
// chunkSize bytes of it in badger under 'c'+hash+size (4 bytes a chunk,
// big-endian, in order), and a reader checks each chunk before it hands
// out any of its bytes. A flipped byte therefore ends a stream with
// DATA_LOSS before the bad chunk, with only verified bytes sent, and the
// caller (the fan-out) can complete the stream from a remote at that
// offset. Files stored before chunk sums have only the whole-file CRC and
// are read by fileReader.

// chunkCount is the number of chunks of a blob of size bytes.
func chunkCount(size int64) int64 { return (size + chunkSize - 1) / chunkSize }

// chunkSums reads the chunk sums of the file blob k.
func (l *Store) chunkSums(k blobKey) ([]uint32, error) {
	var raw []byte
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k.dbKey('c'))
		if err != nil {
			return err
		}
		raw, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) != 4*chunkCount(k.size) {
		return nil, fmt.Errorf("%d bytes of chunk sums for %d chunks", len(raw), chunkCount(k.size))
	}
	sums := make([]uint32, len(raw)/4)
	for i := range sums {
		sums[i] = binary.BigEndian.Uint32(raw[4*i:])
	}
	return sums, nil
}

// openChunked returns a chunk-verifying reader of the open file f of k from
// offset, or nil when k has no usable chunk sums (the caller then checks
// the whole-file CRC instead, as for a file stored before chunk sums).
func (l *Store) openChunked(k blobKey, e entry, f *os.File, offset int64) io.ReadCloser {
	if !e.chunked {
		return nil
	}
	sums, err := l.chunkSums(k)
	if err != nil {
		if !errors.Is(err, badger.ErrDBClosed) {
			l.log.Warn("store: chunk sums unreadable; verifying the whole file instead", "digest", k.digest().String(), "error", err)
		}
		return nil
	}
	start := offset / chunkSize * chunkSize
	if offset == k.size {
		start = offset // nothing to read, not even the last chunk
	}
	return &chunkReader{l: l, k: k, f: f, sums: sums, pos: start, skip: int(offset - start)}
}

// chunkReader streams a file blob from an offset, reading it chunk by
// chunk and checking each chunk's CRC-32C before returning any of its
// bytes. A chunk that fails deletes the blob and fails the Read with
// DATA_LOSS; every byte returned before that was verified. Chunks read into
// a Read buffer that can hold them whole are not copied. Not safe for
// concurrent use, like any io.Reader.
type chunkReader struct {
	l    *Store
	k    blobKey
	f    *os.File
	sums []uint32
	pos  int64   // file offset of the next chunk to read (a chunk boundary)
	skip int     // bytes of that chunk before the reader's offset
	held []byte  // verified bytes of the last chunk not yet returned
	buf  *[]byte // from chunkBufs, for chunks read in parts
	once sync.Once
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.held) == 0 {
		if r.pos >= r.k.size {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		n := int(min(chunkSize, r.k.size-r.pos))
		if r.skip == 0 && len(p) >= n {
			// Straight into p: a caller reads nothing of a failed Read.
			if err := r.readChunk(p[:n]); err != nil {
				return 0, err
			}
			r.l.getBytes.Add(int64(n))
			return n, nil
		}
		if r.buf == nil {
			r.buf = chunkBufs.Get().(*[]byte)
		}
		b := (*r.buf)[:n]
		if err := r.readChunk(b); err != nil {
			return 0, err
		}
		r.held, r.skip = b[r.skip:], 0
	}
	n := copy(p, r.held)
	r.held = r.held[n:]
	r.l.getBytes.Add(int64(n))
	return n, nil
}

// readChunk reads the chunk at r.pos into b (its exact length) and checks it.
func (r *chunkReader) readChunk(b []byte) error {
	i := r.pos / chunkSize
	if _, err := r.f.ReadAt(b, r.pos); err != nil {
		if errors.Is(err, io.EOF) {
			return r.corrupt("blob file is shorter than its digest")
		}
		return ioError("read", r.f.Name(), err)
	}
	if crc32.Checksum(b, castagnoli) != r.sums[i] {
		return r.corrupt(fmt.Sprintf("chunk %d (bytes %d-%d) fails its checksum", i, r.pos, r.pos+int64(len(b))-1))
	}
	r.pos += int64(len(b))
	return nil
}

func (r *chunkReader) corrupt(why string) error {
	return &prefixVerifiedError{status.Convert(corruptFile(r.l, r.k, why))}
}

// prefixVerifiedError is the DATA_LOSS of a chunkReader: every byte it
// returned before was verified.
type prefixVerifiedError struct{ s *status.Status }

func (e *prefixVerifiedError) Error() string { return e.s.Err().Error() }

// GRPCStatus makes status.Code and status.Convert see the DATA_LOSS.
func (e *prefixVerifiedError) GRPCStatus() *status.Status { return e.s }

// PrefixVerified reports whether err, returned by a Read of a reader from
// Local.Get, ended a stream whose earlier bytes were all verified: the
// blob was found corrupt (and deleted) at a chunk none of whose bytes went
// out, so the caller may complete the stream from another copy at the
// offset reached. It is false for any other error, including the DATA_LOSS
// of a file stored before chunk sums, which is found only once its bytes
// have been returned.
func PrefixVerified(err error) bool {
	var pv *prefixVerifiedError
	return errors.As(err, &pv)
}

// Close releases the file, the buffer and the pin. Idempotent.
func (r *chunkReader) Close() error {
	r.once.Do(func() {
		_ = r.f.Close()
		r.l.ix.unpin(r.k)
		if r.buf != nil {
			r.held = nil
			chunkBufs.Put(r.buf)
			r.buf = nil
		}
	})
	return nil
}
