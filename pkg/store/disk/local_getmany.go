package disk

import (
	"context"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store"
)

// GetMany implements store.CAS by calling GetBytes for each digest in
// turn: a local small blob costs a few microseconds, less than handing it
// to another goroutine. Same size rule as GetBytes.
func (l *Store) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := make([]store.BlobResult, len(ds))
	for i, d := range ds {
		out[i].Data, out[i].Err = l.GetBytes(ctx, d)
	}
	return out
}
