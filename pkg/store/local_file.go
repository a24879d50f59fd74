package store

import (
	"crypto/sha256"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// copyBufs holds the 1 MiB buffers large uploads stream through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// blobPath is where a large blob lives: dir/cas/<first hash byte>/<hash>-<size>.
func (l *Local) blobPath(k blobKey) string {
	return filepath.Join(l.casDir, k.fileName()[:2], k.fileName())
}

// storeFile streams a large blob into a temp file while hashing it, renames
// it into place once verified and only then indexes it, so a crash at any
// point leaves either nothing or an orphan file that Open's reconciliation
// removes.
func (l *Local) storeFile(k blobKey, r io.Reader) (entry, error) {
	f, err := os.CreateTemp(l.tmpDir, "put-")
	if err != nil {
		return entry{}, ioError("create temp file in", l.tmpDir, err)
	}
	tmp := f.Name()
	crc, err := copyVerified(f, r, k)
	if err == nil && l.syncWrites {
		err = ioErrorIf("fsync", tmp, f.Sync())
	}
	if err == nil {
		err = ioErrorIf("chmod", tmp, f.Chmod(0o444))
	}
	if cerr := f.Close(); err == nil {
		err = ioErrorIf("close", tmp, cerr)
	}
	final := l.blobPath(k)
	if err == nil {
		err = ioErrorIf("rename into", final, os.Rename(tmp, final))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return entry{}, err
	}
	if l.syncWrites {
		syncDir(filepath.Dir(final))
	}
	e := entry{crc: crc}
	if err := l.db.Update(func(txn *badger.Txn) error {
		return txn.Set(k.dbKey('m'), encodeMeta(e, l.ix.clock.Load()))
	}); err != nil {
		_ = os.Remove(final)
		return entry{}, dbError("index blob "+k.digest().String(), err)
	}
	return e, nil
}

// copyVerified copies r to f, checking that r holds exactly the bytes of k,
// and returns their CRC-32C.
func copyVerified(f *os.File, r io.Reader, k blobKey) (uint32, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	h, c := sha256.New(), crc32.New(castagnoli)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if n += int64(m); n > k.size {
				return 0, status.Errorf(codes.InvalidArgument, "blob %s: more than the %d bytes its digest declares", k.digest(), k.size)
			}
			h.Write(buf[:m])
			c.Write(buf[:m])
			if _, err := f.Write(buf[:m]); err != nil {
				return 0, ioError("write", f.Name(), err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, sourceError(k, rerr)
		}
	}
	if n != k.size {
		return 0, sizeMismatch(k, n)
	}
	if [32]byte(h.Sum(nil)) != k.hash {
		return 0, status.Errorf(codes.InvalidArgument, "blob bytes do not hash to the declared digest %s", k.digest())
	}
	return c.Sum32(), nil
}

func ioErrorIf(what, path string, err error) error {
	if err == nil {
		return nil
	}
	return ioError(what, path, err)
}

// syncDir makes a rename durable against power loss (SyncWrites only).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
