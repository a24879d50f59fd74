package upstream

import (
	"context"
	"io"
	"maps"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// GetMany implements store.BatchGetter: the distinct blobs of ds are read
// in BatchReadBlobs calls that each fit the remote's batch limit, a few
// calls at once; a blob too large for a batch is read through Get. Every
// blob is verified before it is returned; a mismatch is that entry's
// DATA_LOSS. A call that fails fails each of its entries with its error.
func (c *casClient) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := make([]store.BlobResult, len(ds))
	limit, err := c.r.batchLimit(ctx)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	got := c.readGroups(ctx, ds, limit)
	for i, d := range ds {
		out[i] = got[d]
	}
	return out
}

// readGroups reads the distinct digests of ds, packed into groups that fit
// limit, findMissingParallel groups at once.
func (c *casClient) readGroups(ctx context.Context, ds []digest.Digest, limit int64) map[digest.Digest]store.BlobResult {
	got := make(map[digest.Digest]store.BlobResult, len(ds))
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(findMissingParallel)
	for _, group := range c.groups(ds, limit) {
		g.Go(func() error {
			m := c.readGroup(ctx, group)
			mu.Lock()
			maps.Copy(got, m)
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait() // readGroup reports per blob and never fails the group
	return got
}

// groups packs the distinct digests of ds into batches of at most limit
// bytes; a digest too large for a batch, or the empty blob, is a group of
// its own.
func (c *casClient) groups(ds []digest.Digest, limit int64) [][]digest.Digest {
	var out [][]digest.Digest
	var cur []digest.Digest
	var size int64
	seen := digest.NewSet()
	for _, d := range ds {
		if seen.Has(d) {
			continue
		}
		seen.Add(d)
		if d.IsEmpty() || !batchable(d.Size, limit) {
			out = append(out, []digest.Digest{d})
			continue
		}
		entry := d.Size + batchEntryOverhead
		if size+entry > limit && len(cur) > 0 {
			out, cur, size = append(out, cur), nil, 0
		}
		cur, size = append(cur, d), size+entry
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// readGroup reads one group: a lone blob that is empty or too large for a
// batch through Get, the others with one BatchReadBlobs call.
func (c *casClient) readGroup(ctx context.Context, group []digest.Digest) map[digest.Digest]store.BlobResult {
	if len(group) == 1 && (group[0].IsEmpty() || group[0].Size > smallBlobLimit) {
		d := group[0]
		data, err := c.readWhole(ctx, d)
		return map[digest.Digest]store.BlobResult{d: {Data: data, Err: err}}
	}
	return c.batchReadMany(ctx, group)
}

// readWhole reads d through Get into memory; Get verifies it.
func (c *casClient) readWhole(ctx context.Context, d digest.Digest) ([]byte, error) {
	rc, err := c.Get(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, d.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, wrap(c.r.name, status.Errorf(codes.DataLoss, "blob %s: %v", d, err))
	}
	return buf, nil
}

// batchReadMany reads group with one BatchReadBlobs call and verifies each
// blob. An entry the remote did not answer is INTERNAL.
func (c *casClient) batchReadMany(ctx context.Context, group []digest.Digest) map[digest.Digest]store.BlobResult {
	out := make(map[digest.Digest]store.BlobResult, len(group))
	req := &repb.BatchReadBlobsRequest{InstanceName: c.r.instance, Digests: make([]*repb.Digest, len(group))}
	for i, d := range group {
		req.Digests[i] = d.Proto()
	}
	resp, err := c.r.cas.BatchReadBlobs(ctx, req)
	for _, d := range group {
		out[d] = store.BlobResult{Err: wrap(c.r.name, err)}
		if err == nil {
			out[d] = store.BlobResult{Err: wrap(c.r.name, status.Errorf(codes.Internal, "BatchReadBlobs did not answer for blob %s", d))}
		}
	}
	if err != nil {
		return out
	}
	for _, r := range resp.GetResponses() {
		d, err := digest.FromProto(r.GetDigest())
		if _, asked := out[d]; err != nil || !asked {
			continue // not something we asked for: ignored
		}
		out[d] = c.batchEntry(d, r)
	}
	return out
}

// batchEntry turns one BatchReadBlobs response entry into a verified
// result.
func (c *casClient) batchEntry(d digest.Digest, r *repb.BatchReadBlobsResponse_Response) store.BlobResult {
	if s := status.FromProto(r.GetStatus()); s.Code() != codes.OK {
		return store.BlobResult{Err: wrap(c.r.name, status.Errorf(s.Code(), "blob %s: %s", d, s.Message()))}
	}
	c.r.metrics.received.Add(float64(len(r.GetData())))
	if err := verify(d, r.GetData(), codes.DataLoss); err != nil {
		return store.BlobResult{Err: wrap(c.r.name, err)}
	}
	return store.BlobResult{Data: r.GetData()}
}
