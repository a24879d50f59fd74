package disk

import (
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// openFile opens a pinned file blob for reading from offset. A missing or
// short file is discarded at once (NOT_FOUND); other damage shows up as
// DATA_LOSS on the Read of the first bad chunk (see chunkReader), or, for a
// file stored before chunk sums, on the last Read.
func (l *Store) openFile(k blobKey, e entry, offset int64) (io.ReadCloser, error) {
	path := l.blobPath(k)
	f, err := os.Open(path)
	if err != nil {
		l.ix.unpin(k)
		if errors.Is(err, os.ErrNotExist) {
			return nil, l.discard(k, "blob file is missing")
		}
		return nil, ioError("open", path, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != k.size {
		_ = f.Close()
		l.ix.unpin(k)
		return nil, l.discard(k, "blob file has the wrong size")
	}
	if cr := l.openChunked(k, e, f, offset); cr != nil {
		return cr, nil
	}
	return &fileReader{l: l, k: k, f: f, want: e.crc, crc: crc32.New(castagnoli), skip: offset, left: k.size}, nil
}

// fileReader streams a file blob stored without chunk sums, checking its
// CRC-32C over the whole file (including any prefix before the offset, read
// on the first Read). Not safe for concurrent use, like any io.Reader.
type fileReader struct {
	l    *Store
	k    blobKey
	f    *os.File
	crc  hash.Hash32
	want uint32
	skip int64 // prefix bytes to checksum before serving
	left int64 // bytes of the file not yet read
	once sync.Once
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.skip > 0 {
		if err := r.checksumPrefix(); err != nil {
			return 0, err
		}
	}
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	r.crc.Write(p[:n])
	r.left -= int64(n)
	if r.left == 0 && r.crc.Sum32() != r.want {
		return 0, r.corrupt("blob file fails its checksum")
	}
	if err == io.EOF && r.left > 0 {
		return 0, r.corrupt("blob file is shorter than its digest")
	}
	if err != nil && err != io.EOF {
		return n, ioError("read", r.f.Name(), err)
	}
	r.l.getBytes.Add(int64(n))
	return n, nil
}

// checksumPrefix reads the bytes before the offset through the checksum.
func (r *fileReader) checksumPrefix() error {
	n, err := io.CopyN(r.crc, r.f, r.skip)
	r.left -= n
	r.skip = 0
	if err != nil {
		return r.corrupt("blob file is shorter than its digest")
	}
	return nil
}

func (r *fileReader) corrupt(why string) error { return corruptFile(r.l, r.k, why) }

// corruptFile deletes the file blob k, found corrupt by a reader, and
// returns the DATA_LOSS that reader fails with.
func corruptFile(l *Store, k blobKey, why string) error {
	_ = l.discard(k, why)
	return status.Errorf(codes.DataLoss, "local store: blob %s: stored bytes are corrupt (%s); deleted, not served", k.digest(), why)
}

// Close releases the file and the pin. Idempotent.
func (r *fileReader) Close() error {
	r.once.Do(func() {
		_ = r.f.Close()
		r.l.ix.unpin(r.k)
	})
	return nil
}
