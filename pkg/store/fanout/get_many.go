package fanout

import (
	"context"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// localMany reads ds from local: GetMany, GetBytes or Get, whichever
// local offers first. Errors are local's, unlabelled.
func localMany(ctx context.Context, local store.CAS, ds []digest.Digest) []store.BlobResult {
	bg, ok := local.(store.BytesGetter)
	if _, batch := local.(store.BatchGetter); batch || !ok {
		return store.GetMany(ctx, local, ds)
	}
	out := make([]store.BlobResult, len(ds))
	for i, d := range ds {
		out[i].Data, out[i].Err = bg.GetBytes(ctx, d)
	}
	return out
}
