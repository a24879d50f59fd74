package disk

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/castd/castd/pkg/digest"
)

// commitUpload stores the verified upload u: a large blob by renaming its
// file into place with the sums u computed, a small one into a pack (the
// file is then dropped), each through the claim, quota and publication of
// any Put. A blob that is stored already wins and u's file is dropped.
// The file's bytes stop counting as an upload in progress: the Put's own
// reservation of the blob takes over (or, on failure, they count again
// while the file remains).
func (l *Store) commitUpload(ctx context.Context, u *Upload) error {
	counted := u.counted
	u.uncount(counted)
	err := l.commitUploadFile(ctx, u)
	if err != nil && u.state == uploadOpen {
		l.pending.Add(counted)
		u.counted = counted
	}
	return err
}

// reserveSpool counts n bytes of an upload of k as in progress, making
// room within the quota as reserve does for a Put. It waits for the
// index to load only when the store is over its limit.
func (l *Store) reserveSpool(k blobKey, n int64) error {
	l.pending.Add(n)
	lim := l.limit(false)
	if lim < 0 || l.usage() <= lim {
		return nil
	}
	if err := l.makeRoom(context.Background(), k, lim); err != nil {
		l.pending.Add(-n)
		return err
	}
	return nil
}

func (l *Store) commitUploadFile(ctx context.Context, u *Upload) error {
	k := u.k
	if k.size == 0 { // the empty blob is always present
		u.Suspend()
		_ = os.Remove(u.path)
		return nil
	}
	if k.size <= l.inline {
		return l.commitSmallUpload(ctx, u)
	}
	installed := false
	err := l.putGrowing(ctx, k.digest(), 0, func(k blobKey) (entry, error) {
		if err := u.open(); err != nil {
			return entry{}, err
		}
		f := u.f
		u.f = nil // install closes it
		e, err := l.install(k, f, u.crc.Sum32(), u.sums)
		if err != nil {
			u.state = uploadGone // install removed the file
		}
		installed = err == nil
		return e, err
	})
	if err == nil && !installed { // stored by someone else first
		u.Suspend()
		_ = os.Remove(u.path)
	}
	return err
}

// commitSmallUpload reads a small upload back (at most InlineThreshold
// bytes) and appends it to a pack as PutBytes would, without hashing it
// again.
func (l *Store) commitSmallUpload(ctx context.Context, u *Upload) error {
	data, err := os.ReadFile(u.path)
	if err != nil {
		return ioError("read", u.path, err)
	}
	if int64(len(data)) != u.k.size {
		return sizeMismatch(u.k, int64(len(data)))
	}
	err = l.put(ctx, u.k.digest(), func(k blobKey) (entry, error) { return l.writeInline(k, data, true) })
	if err != nil {
		return err
	}
	u.Suspend()
	_ = os.Remove(u.path)
	return nil
}

// pinnedReader returns a reader of the stored blob k that keeps it from
// eviction until Close and opens it (with Get, verifying as usual) only at
// its first Read.
func (l *Store) pinnedReader(ctx context.Context, k blobKey) (io.ReadCloser, error) {
	if k.size == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	k, _, err := l.pinDigest(k.digest())
	if err != nil {
		return nil, err
	}
	return &pinnedReader{ctx: ctx, l: l, d: k.digest(), k: k}, nil
}

// pinnedReader is the reader of pinnedReader. Not safe for concurrent
// use, like any io.Reader.
type pinnedReader struct {
	ctx  context.Context
	l    *Store
	d    digest.Digest
	k    blobKey
	rc   io.ReadCloser
	once sync.Once
}

func (r *pinnedReader) Read(p []byte) (int, error) {
	if r.rc == nil {
		rc, err := r.l.Get(r.ctx, r.d, 0)
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	return r.rc.Read(p)
}

// Close releases the blob (and the reader, if opened). Idempotent.
func (r *pinnedReader) Close() error {
	r.once.Do(func() {
		if r.rc != nil {
			_ = r.rc.Close()
		}
		r.l.ix.unpin(r.k)
	})
	return nil
}
