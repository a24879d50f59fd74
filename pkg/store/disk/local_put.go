package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Put implements CAS. Concurrent Puts of one digest write it once: the first
// caller stores it, the others wait and then succeed without reading their
// reader (if the first fails verification, the next one tries). Small blobs
// are buffered (at most InlineThreshold bytes); large ones stream through a
// temp file, so memory use is independent of the blob size.
func (l *Store) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return l.putStream(ctx, d, r, false)
}

// PutWith implements store.CAS: Put, writing a blob of directMin bytes or
// more with O_DIRECT where the file system allows it when hint.Uncached.
func (l *Store) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	return l.putStream(ctx, d, r, hint.Uncached)
}

func (l *Store) putStream(ctx context.Context, d digest.Digest, r io.Reader, uncached bool) error {
	if d.IsEmpty() {
		return putEmpty(d, r)
	}
	return l.put(ctx, d, func(k blobKey) (entry, error) {
		if k.size <= l.inline {
			return l.storeInline(k, r)
		}
		return l.storeFile(k, r, uncached && k.size >= directMin)
	})
}

// PutBytes implements store.CAS: Put for bytes already in memory. A small
// blob is handed to the index as it is, without the copy into a buffer
// that Put makes, and verified unless hint.Verified (the caller checked its
// hash; the size is still checked). A large blob takes the verifying
// Put path (with hint.Uncached). data is not retained after PutBytes
// returns.
func (l *Store) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	if d.IsEmpty() || int64(len(data)) != d.Size || d.Size > l.inline {
		return l.putStream(ctx, d, bytes.NewReader(data), hint.Uncached) // reports any mismatch
	}
	return l.put(ctx, d, func(k blobKey) (entry, error) { return l.writeInline(k, data, hint.Verified) })
}

// put claims d, reserves room, writes it with write and publishes it.
func (l *Store) put(ctx context.Context, d digest.Digest, write func(blobKey) (entry, error)) error {
	return l.putGrowing(ctx, d, d.Size, write)
}

// putGrowing is put for a write that adds grow bytes to the filesystem:
// d.Size for bytes still to be written, 0 for an Upload's file, which is
// there already (the free-space guard must not count it twice).
func (l *Store) putGrowing(ctx context.Context, d digest.Digest, grow int64, write func(blobKey) (entry, error)) error {
	k, ok := keyOf(d)
	if !ok {
		return status.Errorf(codes.InvalidArgument, "digest %s: malformed hash", d)
	}
	owned, err := l.claim(ctx, k)
	if err != nil || !owned {
		return err
	}
	e, err := l.store(ctx, k, grow, write)
	if err != nil {
		l.ix.release(k)
		return err
	}
	if !e.packed() { // the committer published a packed blob already
		l.ix.publish(k, e)
	}
	l.putBytes.Add(k.size)
	return nil
}

// claim waits until k is either stored (owned=false) or ours to write.
func (l *Store) claim(ctx context.Context, k blobKey) (owned bool, err error) {
	for {
		st, ch := l.ix.claim(k)
		switch st {
		case present:
			return false, nil
		case claimed:
			return l.claimedWhileLoading(k)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// claimedWhileLoading checks badger for a k the half-built index lacks.
func (l *Store) claimedWhileLoading(k blobKey) (bool, error) {
	if !l.ix.loading.Load() {
		return true, nil
	}
	e, found, err := l.lookupDisk(k)
	if err != nil {
		l.ix.release(k)
		return false, err
	}
	if found {
		l.ix.publish(k, e)
		return false, nil
	}
	return true, nil
}

// store reserves room, then writes and verifies the bytes of a claimed k,
// which adds grow bytes to the filesystem.
func (l *Store) store(ctx context.Context, k blobKey, grow int64, write func(blobKey) (entry, error)) (entry, error) {
	// A full filesystem refuses the write before reserve evicts anything
	// for it (the space went elsewhere; the cache keeps serving reads).
	// Once reserve has made room, the blob itself must fit too.
	if err := l.spaceFor(0); err != nil {
		return entry{}, err
	}
	if err := l.reserve(ctx, k); err != nil {
		return entry{}, err
	}
	defer l.pending.Add(-k.size)
	if err := l.spaceFor(grow); err != nil {
		return entry{}, err
	}
	return write(k)
}

// storeInline reads a small blob into a pooled buffer and writes it.
func (l *Store) storeInline(k blobKey, r io.Reader) (entry, error) {
	bp := l.inlineBuf()
	defer l.bufs.Put(bp)
	data := (*bp)[:k.size]
	if n, err := io.ReadFull(r, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return entry{}, sizeMismatch(k, int64(n))
		}
		return entry{}, sourceError(k, err)
	}
	if err := expectEOF(k, r); err != nil {
		return entry{}, err
	}
	return l.writeInline(k, data, false)
}

// writeInline verifies a small blob in memory (unless the caller has:
// hashChecked) and appends it to a pack, in a group commit with concurrent
// Puts (see committer). The committer copies data into the pack before
// commitBlob returns.
func (l *Store) writeInline(k blobKey, data []byte, hashChecked bool) (entry, error) {
	if !hashChecked && !k.hashes(data) {
		return entry{}, hashMismatch(k, data)
	}
	e := entry{crc: crc32.Checksum(data, castagnoli), inline: true, tick: l.ix.clock.Load()}
	e, err := l.commits.commitBlob(k, data, e)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return entry{}, err // a pack write failed: keeps its code (a full disk, say)
		}
		return entry{}, dbError("write blob "+k.digest().String(), err)
	}
	return e, nil
}

// inlineBuf returns a pooled buffer for an inline blob. Badger copies the
// value during the commit, so the buffer can be reused once it returns.
func (l *Store) inlineBuf() *[]byte {
	if bp, ok := l.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, l.inline)
	return &b
}

// expectEOF fails if r holds more bytes than the digest declares.
func expectEOF(k blobKey, r io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	switch {
	case n > 0:
		return status.Errorf(codes.InvalidArgument, "blob %s: more than the %d bytes its digest declares", k.digest(), k.size)
	case errors.Is(err, io.EOF):
		return nil
	default:
		return sourceError(k, err)
	}
}

func putEmpty(d digest.Digest, r io.Reader) error {
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return status.Errorf(codes.InvalidArgument, "blob %s: the empty digest was sent with data", d)
	}
	return nil
}

// hashes reports whether data hashes to k under k's function.
func (k blobKey) hashes(data []byte) bool {
	if k.fn == digest.SHA256 {
		return sha256.Sum256(data) == k.hash
	}
	h := k.fn.NewHasher()
	h.Write(data)
	return bytes.Equal(h.Sum(nil), k.raw())
}

func sizeMismatch(k blobKey, got int64) error {
	return status.Errorf(codes.InvalidArgument, "blob %s: got %d bytes, its digest declares %d", k.digest(), got, k.size)
}

func hashMismatch(k blobKey, data []byte) error {
	return status.Errorf(codes.InvalidArgument, "blob bytes hash to %s, not the declared digest %s", digest.OfBytesIn(k.fn, data), k.digest())
}

// sourceError keeps the status of a failing reader (a client stream that
// was cancelled, say) and calls anything else INTERNAL.
func sourceError(k blobKey, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "store: read blob %s from its source: %v", k.digest(), err)
}

func dbError(what string, err error) error {
	return status.Errorf(codes.Internal, "store index: %s: %v", what, err)
}

// Kinds of blob in the persisted metadata.
const (
	metaFile   = 0 // a file under dir/cas
	metaInline = 1 // bytes in badger under 'd' (stores written before packs)
	metaPacked = 2 // bytes in a pack file
	metaFileCS = 3 // a file under dir/cas with chunk sums under 'c'
)

// encodeMeta is the persisted form of an entry: kind, CRC, last use, and
// for a packed blob its pack and offset. A file blob's chunk sums are a
// key of their own ('c', see chunkSums), so that loading the index at Open
// reads 13 bytes a blob whatever its size.
func encodeMeta(e entry, tick uint64) []byte {
	b := make([]byte, 13, 21)
	switch {
	case e.packed():
		b[0] = metaPacked
		b = binary.BigEndian.AppendUint32(b, e.pack)
		b = binary.BigEndian.AppendUint32(b, e.off)
	case e.inline:
		b[0] = metaInline
	case e.chunked:
		b[0] = metaFileCS
	}
	binary.BigEndian.PutUint32(b[1:], e.crc)
	binary.BigEndian.PutUint64(b[5:], tick)
	return b
}

func decodeMeta(b []byte) (entry, bool) {
	if len(b) < 13 {
		return entry{}, false
	}
	e := entry{crc: binary.BigEndian.Uint32(b[1:]), tick: binary.BigEndian.Uint64(b[5:])}
	switch {
	case b[0] == metaFile && len(b) == 13:
	case b[0] == metaFileCS && len(b) == 13:
		e.chunked = true
	case b[0] == metaInline && len(b) == 13:
		e.inline = true
	case b[0] == metaPacked && len(b) == 21:
		e.inline = true
		e.pack, e.off = binary.BigEndian.Uint32(b[13:]), binary.BigEndian.Uint32(b[17:])
		return e, e.pack != 0
	default:
		return entry{}, false
	}
	return e, true
}
