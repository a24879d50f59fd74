package fanout

import (
	"bytes"
	"context"
	"io"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// getEachParallelism bounds the Gets getEach runs at once for a tier
// without the batch fast path (the tier's own limit may be lower).
const getEachParallelism = 32

// getMany reads ds from cas with one GetMany call when cas offers
// store.BatchGetter, else with one Get per digest (getEach).
func getMany(ctx context.Context, cas store.CAS, ds []digest.Digest) []store.BlobResult {
	if bg, ok := cas.(store.BatchGetter); ok {
		return bg.GetMany(ctx, ds)
	}
	return getEach(ctx, cas, ds)
}

// getEach reads each digest of ds through cas.Get, getEachParallelism at
// once, each into one exactly sized buffer.
func getEach(ctx context.Context, cas store.CAS, ds []digest.Digest) []store.BlobResult {
	out := make([]store.BlobResult, len(ds))
	var g errgroup.Group
	g.SetLimit(getEachParallelism)
	for i, d := range ds {
		g.Go(func() error {
			out[i].Data, out[i].Err = readWhole(ctx, cas, d)
			return nil
		})
	}
	_ = g.Wait() // entries carry their own errors
	return out
}

// readWhole reads d from cas into memory. A reader that ends early is
// DATA_LOSS; the reader's own errors keep their code.
func readWhole(ctx context.Context, cas store.CAS, d digest.Digest) ([]byte, error) {
	rc, err := cas.Get(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, d.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.DataLoss, "blob %s: %v", d, err)
	}
	return buf, nil
}

// localMany reads ds from local: GetMany, GetBytes or Get, whichever
// local offers first. Errors are local's, unlabelled.
func localMany(ctx context.Context, local store.CAS, ds []digest.Digest) []store.BlobResult {
	bg, ok := local.(store.BytesGetter)
	if _, batch := local.(store.BatchGetter); batch || !ok {
		return getMany(ctx, local, ds)
	}
	out := make([]store.BlobResult, len(ds))
	for i, d := range ds {
		out[i].Data, out[i].Err = bg.GetBytes(ctx, d)
	}
	return out
}

// putBytes stores data under d in local: PutBytes when local offers it.
func putBytes(ctx context.Context, local store.CAS, d digest.Digest, data []byte) error {
	if bp, ok := local.(store.BytesPutter); ok {
		return bp.PutBytes(ctx, d, data)
	}
	return local.Put(ctx, d, bytes.NewReader(data))
}
