package store

import (
	"context"

	"github.com/castd/castd/pkg/digest"
)

// GetMany implements BatchGetter by calling GetBytes for each digest in
// turn: a local small blob costs a few microseconds, less than handing it
// to another goroutine. Same size rule as GetBytes.
func (l *Local) GetMany(ctx context.Context, ds []digest.Digest) []BlobResult {
	out := make([]BlobResult, len(ds))
	for i, d := range ds {
		out[i].Data, out[i].Err = l.GetBytes(ctx, d)
	}
	return out
}
