package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// blobPath is where a large blob lives: dir/cas/<first hash byte>/<hash>-<size>
// for SHA-256 (the layout of stores written before other functions), and
// dir/cas/<function>/<first hash byte>/<hash>-<size> for the others
// ("blake3", "sha512"...: names no SHA-256 fan-out directory has), so
// blobs of different functions with the same hex never share a file.
func (l *Store) blobPath(k blobKey) string {
	name := k.fileName()
	return filepath.Join(l.fanoutDir(k.fn, name[:2]), name)
}

// fanoutDir is the directory of f's files whose hash starts with hex2.
func (l *Store) fanoutDir(f digest.Function, hex2 string) string {
	if f == digest.SHA256 {
		return filepath.Join(l.casDir, hex2)
	}
	return filepath.Join(l.casDir, f.String(), hex2)
}

// storeFile streams a large blob into a temp file while hashing it, renames
// it into place once verified and only then indexes it, so a crash at any
// point leaves either nothing or an orphan file that Open's reconciliation
// removes. With direct, the file is written with O_DIRECT where the file
// system allows it.
func (l *Store) storeFile(k blobKey, r io.Reader, direct bool) (entry, error) {
	f, err := os.CreateTemp(l.tmpDir, "put-")
	if err != nil {
		return entry{}, ioError("create temp file in", l.tmpDir, err)
	}
	tmp := f.Name()
	w := &directWriter{f: f}
	if direct {
		w = newDirectWriter(f)
	}
	crc, sums, err := copyVerified(w, r, k)
	if direct && !w.direct {
		l.directRefused()
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return entry{}, err
	}
	return l.install(k, f, crc, sums)
}

// install moves the verified, complete temp file f of k into place and
// indexes it with its whole-file CRC and chunk sums: the end of storeFile
// and of an Upload's Commit. It closes f; on failure nothing of k remains.
func (l *Store) install(k blobKey, f *os.File, crc uint32, sums []byte) (entry, error) {
	tmp := f.Name()
	var err error
	if l.syncWrites {
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
		err = rename(tmp, final, k.fn != digest.SHA256)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return entry{}, err
	}
	if l.syncWrites {
		syncDir(filepath.Dir(final))
	}
	e := entry{crc: crc, chunked: true}
	if err := l.commits.commit(kv{k.dbKey('m'), encodeMeta(e, l.ix.clock.Load())}, kv{k.dbKey('c'), sums}); err != nil {
		_ = os.Remove(final)
		return entry{}, dbError("index blob "+k.digest().String(), err)
	}
	return e, nil
}

// copyVerified copies r through w, checking that r holds exactly the bytes
// of k, and returns their CRC-32C and the chunk sums of the file (see
// chunkSums). Hashing runs in parallel with the copy.
func copyVerified(w *directWriter, r io.Reader, k blobKey) (uint32, []byte, error) {
	p := newPipelinedHasher(k.fn)
	c := crc32.New(castagnoli)
	sums := make([]byte, 0, 4*chunkCount(k.size))
	n, err := copyChunks(w, r, k, p, c, &sums)
	if err == nil {
		err = ioErrorIf("truncate", w.f.Name(), w.finish())
	}
	sum := p.sum()
	if err != nil {
		return 0, nil, err
	}
	if n != k.size {
		return 0, nil, sizeMismatch(k, n)
	}
	if !bytes.Equal(sum, k.raw()) {
		return 0, nil, status.Errorf(codes.InvalidArgument, "blob bytes do not hash to the declared digest %s", k.digest())
	}
	return c.Sum32(), sums, nil
}

// copyChunks moves r to f chunk by chunk, feeding the hasher and c and
// appending each chunk's CRC-32C to sums. Every chunk but the last is
// exactly chunkSize bytes (io.ReadFull), which is what makes them the
// chunks that readers verify.
func copyChunks(w *directWriter, r io.Reader, k blobKey, p *pipelinedHasher, c hash.Hash32, sums *[]byte) (int64, error) {
	var n int64
	for {
		bp := p.buffer()
		m, rerr := io.ReadFull(r, *bp)
		if m > 0 {
			if n += int64(m); n > k.size {
				p.hash(bp, 0)
				return n, status.Errorf(codes.InvalidArgument, "blob %s: more than the %d bytes its digest declares", k.digest(), k.size)
			}
			c.Write((*bp)[:m])
			*sums = binary.BigEndian.AppendUint32(*sums, crc32.Checksum((*bp)[:m], castagnoli))
			if err := w.write((*bp)[:m]); err != nil {
				p.hash(bp, 0)
				return n, ioError("write", w.f.Name(), err)
			}
		}
		p.hash(bp, m)
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return n, nil
		case rerr != nil:
			return n, sourceError(k, rerr)
		}
	}
}

// rename moves tmp to final; with mkdir, it creates final's directory if
// need be (Open creates only SHA-256's fan-out directories).
func rename(tmp, final string, mkdir bool) error {
	err := os.Rename(tmp, final)
	if mkdir && errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(final), 0o755); err == nil {
			err = os.Rename(tmp, final)
		}
	}
	return ioErrorIf("rename into", final, err)
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
