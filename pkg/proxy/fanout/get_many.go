package fanout

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// localOrFilling is localMany that also serves, for a local miss, the
// bytes of a pending fill of the digest (answered already, not yet
// stored). A fill ends only after its Put, so a blob is always in one or
// the other until a failed fill drops it.
func (c *fanoutCAS) localOrFilling(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := localMany(ctx, c.local, ds)
	for i := range out {
		if status.Code(out[i].Err) != codes.NotFound {
			continue
		}
		if data, ok := c.fills.lookup(ds[i]); ok {
			out[i] = store.BlobResult{Data: data}
		}
	}
	return out
}
