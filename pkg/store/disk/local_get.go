package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// FindMissing implements CAS. It answers from memory (a lock per 256th of
// the index, no I/O) and marks every present digest used. While the index is
// still loading after Open, misses are confirmed in badger.
func (l *Store) FindMissing(_ context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	var missing []digest.Digest
	var seen digest.Set
	for _, d := range ds {
		if d.IsEmpty() || l.has(d) {
			continue
		}
		if seen == nil {
			seen = digest.NewSet()
		}
		if !seen.Has(d) {
			seen.Add(d)
			missing = append(missing, d)
		}
	}
	return missing, nil
}

func (l *Store) has(d digest.Digest) bool {
	k, ok := keyOf(d)
	if !ok {
		return false
	}
	loading := l.ix.loading.Load() // before the lookup: see adoptFromDisk
	if l.ix.touch(k) {
		return true
	}
	if !loading {
		return false
	}
	l.adoptFromDisk(k)
	return l.ix.touch(k)
}

// testHookMissedWhileLoading, when set by a test, runs after a lookup
// missed while the index was loading, to let the load end at that point.
var testHookMissedWhileLoading func(*Store)

// adoptFromDisk looks k up in badger while the index is loading and adopts
// it. A caller that missed k in the index while loading was still true must
// look again after this whether or not it adopted anything: the load may
// have ended in between, after the loader adopted k itself (it adopts
// every key before loading turns false).
func (l *Store) adoptFromDisk(k blobKey) {
	if !l.ix.loading.Load() {
		return
	}
	if e, found, err := l.lookupDisk(k); err == nil && found {
		l.ix.adopt(k, e)
	}
}

func (l *Store) lookupDisk(k blobKey) (e entry, found bool, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k.dbKey('m'))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { e, found = decodeMeta(v); return nil })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return e, false, nil
	}
	if err != nil {
		return e, false, dbError("look up blob "+k.digest().String(), err)
	}
	return e, found, nil
}

// GetWith implements store.CAS: Get, whose reads are checked by a CRC
// (cheap), whatever the hint.
func (l *Store) GetWith(ctx context.Context, d digest.Digest, offset int64, _ store.GetHint) (io.ReadCloser, error) {
	return l.Get(ctx, d, offset)
}

// Get implements CAS. Inline blobs are read and CRC-checked before Get
// returns; file blobs are checked while streaming (see Local). The blob is
// pinned against eviction until the reader is closed.
func (l *Store) Get(_ context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if offset < 0 || offset > d.Size {
		return nil, status.Errorf(codes.OutOfRange, "offset %d outside blob %s", offset, d)
	}
	if d.IsEmpty() {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	k, e, err := l.pinDigest(d)
	if err != nil {
		return nil, err
	}
	if !e.inline {
		return l.openFile(k, e, offset)
	}
	defer l.ix.unpin(k)
	data, err := l.readInline(k, e)
	if err != nil {
		return nil, err
	}
	l.getBytes.Add(k.size - offset)
	return io.NopCloser(bytes.NewReader(data[offset:])), nil
}

// GetBytes reads d whole into memory (GetMany's path for one blob). An inline blob costs one badger read
// into one buffer (no reader, no extra copy); a file blob is read whole
// through its verifying reader, so use it only for blobs of bounded size.
func (l *Store) GetBytes(_ context.Context, d digest.Digest) ([]byte, error) {
	if d.IsEmpty() {
		return []byte{}, nil
	}
	k, e, err := l.pinDigest(d)
	if err != nil {
		return nil, err
	}
	if !e.inline {
		return l.readFileWhole(k, e)
	}
	defer l.ix.unpin(k)
	data, err := l.readInline(k, e)
	if err != nil {
		return nil, err
	}
	l.getBytes.Add(k.size)
	return data, nil
}

// readFileWhole reads a pinned file blob into memory, verified.
func (l *Store) readFileWhole(k blobKey, e entry) ([]byte, error) {
	rc, err := l.openFile(k, e, 0) // unpins on failure, else on Close
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, k.size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if status.Code(err) == codes.DataLoss {
			// Nothing was handed out and the blob is deleted: a miss,
			// which sends the fan-out on to the remotes.
			return nil, status.Errorf(codes.NotFound, "blob %s not found (%s)", k.digest(), status.Convert(err).Message())
		}
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.Internal, "read blob %s: %v", k.digest(), err)
	}
	return buf, nil
}

// pinDigest finds d (consulting badger while the index loads) and pins it.
func (l *Store) pinDigest(d digest.Digest) (blobKey, entry, error) {
	k, ok := keyOf(d)
	if !ok {
		return k, entry{}, status.Errorf(codes.InvalidArgument, "digest %s: malformed hash", d)
	}
	loading := l.ix.loading.Load() // before the lookup: see adoptFromDisk
	e, ok := l.ix.pin(k)
	if !ok && loading {
		if testHookMissedWhileLoading != nil {
			testHookMissedWhileLoading(l)
		}
		l.adoptFromDisk(k)
		e, ok = l.ix.pin(k)
	}
	if !ok {
		return k, entry{}, status.Errorf(codes.NotFound, "blob %s not found", d)
	}
	return k, e, nil
}

// readInline returns the verified bytes of a pinned small blob: a copy from
// its (mapped) pack, or, in stores written before packs, one badger read.
func (l *Store) readInline(k blobKey, e entry) ([]byte, error) {
	if !e.packed() {
		return l.readBadgerInline(k, e)
	}
	buf, err := l.packs.read(e.pack, e.off, k.size)
	if errors.Is(err, errPackGone) {
		// Compaction moved the blob after we looked it up: look again.
		var ok bool
		if e, ok = l.ix.peek(k); ok && e.packed() {
			buf, err = l.packs.read(e.pack, e.off, k.size)
		}
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, errPackGone):
		return nil, l.discard(k, "bytes missing from its pack file")
	case err != nil:
		return nil, status.Errorf(codes.Internal, "read blob %s: %v", k.digest(), err)
	case crc32.Checksum(buf, castagnoli) != e.crc:
		return nil, l.discard(k, "bytes in its pack file fail their checksum")
	}
	return buf, nil
}

// readBadgerInline reads a small blob stored in badger under 'd' (stores
// written before packs). The value is the bytes alone; stores written by
// still earlier versions kept a 4-byte copy of the CRC in front of them,
// which is still accepted.
func (l *Store) readBadgerInline(k blobKey, e entry) ([]byte, error) {
	var val []byte
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k.dbKey('d'))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, l.discard(k, "inline bytes missing from the index")
	case err != nil:
		return nil, dbError("read blob "+k.digest().String(), err)
	case int64(len(val)) == 4+k.size && binary.BigEndian.Uint32(val) == e.crc:
		val = val[4:] // the earlier layout, CRC first
	case int64(len(val)) != k.size:
		return nil, l.discard(k, "inline bytes have the wrong length")
	}
	if crc32.Checksum(val, castagnoli) != e.crc {
		return nil, l.discard(k, "inline bytes fail their checksum")
	}
	return val, nil
}

// discard deletes a blob found corrupt or missing, logs and counts it, and
// returns the NOT_FOUND the reader should see. Pins do not protect a corrupt
// blob; open file readers keep their descriptor and fail their last Read.
func (l *Store) discard(k blobKey, why string) error {
	l.evictMu.Lock()
	defer l.evictMu.Unlock()
	return l.discardLocked(k, why)
}

// discardLocked is discard for a caller that holds evictMu.
func (l *Store) discardLocked(k blobKey, why string) error {
	if e, ok := l.ix.take(k, true); ok {
		l.verifyFailures.Add(1)
		l.log.Error("store: deleted a corrupt blob", "digest", k.digest().String(), "reason", why)
		l.deleteBlobs([]victim{{k: k, e: e}})
		l.ix.release(k)
	}
	return status.Errorf(codes.NotFound, "blob %s not found (the stored copy was corrupt and has been deleted: %s)", k.digest(), why)
}
