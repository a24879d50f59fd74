package casdir

import (
	"bytes"
	"context"
	"io"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// The store's fast paths are the generic ones: every blob is one file,
// so a batch costs what its blobs cost one by one, and the hints change
// nothing (a Put always hashes what it writes; files are read through the
// page cache, which BuildStream's checkouts want).

// GetMany reads each blob of ds with Get (store.GetEach).
func (s *Store) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return store.GetEach(ctx, s, ds)
}

// GetWith is Get; the hint changes nothing here.
func (s *Store) GetWith(ctx context.Context, d digest.Digest, offset int64, _ store.GetHint) (io.ReadCloser, error) {
	return s.Get(ctx, d, offset)
}

// PutWith is Put; the hint changes nothing here (bytes are always hashed).
func (s *Store) PutWith(ctx context.Context, d digest.Digest, r io.Reader, _ store.PutHint) error {
	return s.Put(ctx, d, r)
}

// PutBytes is Put from a reader over data.
func (s *Store) PutBytes(ctx context.Context, d digest.Digest, data []byte, _ store.PutHint) error {
	return s.Put(ctx, d, bytes.NewReader(data))
}
