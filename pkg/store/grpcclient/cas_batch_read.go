package grpcclient

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// GetMany implements store.CAS: the distinct blobs of ds are read
// in BatchReadBlobs calls that each fit the remote's batch limit, a few
// calls at once; a blob too large for a batch is read through Get. Every
// blob is verified before it is returned; a mismatch is that entry's
// DATA_LOSS. A call that fails fails each of its entries with its error.
// Results are written in place (no map per call, no error per entry made
// before the answer is known): a cold batch through castd is mostly such
// entries.
func (c *casClient) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := make([]store.BlobResult, len(ds))
	limit, err := c.r.batchLimit(ctx)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	groups, dups := c.groups(ds, limit)
	var g errgroup.Group
	g.SetLimit(findMissingParallel)
	for _, group := range groups {
		g.Go(func() error {
			c.readGroup(ctx, ds, group, out, limit)
			return nil
		})
	}
	_ = g.Wait() // readGroup reports per blob and never fails the group
	for _, dup := range dups {
		out[dup.i] = out[dup.first]
	}
	return out
}

// duplicate is an index of ds whose digest was asked for at index first.
type duplicate struct{ i, first int }

// groups packs the indexes of the distinct digests of ds into batches of at
// most limit bytes, each of one digest function (a request names one); a
// digest too large for a batch, or the empty blob, is a group of its own.
// Repeated digests are returned apart.
func (c *casClient) groups(ds []digest.Digest, limit int64) ([][]int, []duplicate) {
	type batch struct {
		at   []int
		size int64
	}
	var out [][]int
	var dups []duplicate
	var open []*batch // one per function, in order of first appearance
	cur := map[digest.Function]*batch{}
	first := make(map[digest.Digest]int, len(ds))
	for i, d := range ds {
		if f, ok := first[d]; ok {
			dups = append(dups, duplicate{i, f})
			continue
		}
		first[d] = i
		if d.IsEmpty() || !batchable(d.Size, limit) {
			out = append(out, []int{i})
			continue
		}
		b := cur[d.Func]
		if b == nil {
			b = &batch{}
			cur[d.Func] = b
			open = append(open, b)
		}
		entry := d.Size + batchEntryOverhead
		if b.size+entry > limit && len(b.at) > 0 {
			out, b.at, b.size = append(out, b.at), nil, 0
		}
		b.at, b.size = append(b.at, i), b.size+entry
	}
	for _, b := range open {
		if len(b.at) > 0 {
			out = append(out, b.at)
		}
	}
	return out, dups
}

// readGroup reads the blobs ds[i], i in group, into out[i]: a lone blob
// that is empty or too large for a batch through Get, the others with one
// BatchReadBlobs call. limit is the remote's batch limit groups packed
// the group for: a blob too large for it must not be sent in a batch the
// remote would refuse.
func (c *casClient) readGroup(ctx context.Context, ds []digest.Digest, group []int, out []store.BlobResult, limit int64) {
	if d := ds[group[0]]; len(group) == 1 && (d.IsEmpty() || !batchable(d.Size, limit)) {
		i := group[0]
		out[i].Data, out[i].Err = c.readWhole(ctx, ds[i])
		return
	}
	c.batchReadMany(ctx, ds, group, out)
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

// batchReadMany reads ds[i], i in group (distinct digests of one
// function, which the answer's digests are parsed with), with one
// BatchReadBlobs call into out[i] and verifies each blob. An entry the
// remote did not answer is INTERNAL; entries it answered that were not
// asked for are ignored.
func (c *casClient) batchReadMany(ctx context.Context, ds []digest.Digest, group []int, out []store.BlobResult) {
	f := ds[group[0]].Func
	req := &repb.BatchReadBlobsRequest{InstanceName: c.r.instance, Digests: make([]*repb.Digest, len(group)), DigestFunction: fnField(f)}
	for k, i := range group {
		req.Digests[k] = ds[i].Proto()
	}
	c.acceptCompressed(ctx, req)
	resp, err := c.r.cas.BatchReadBlobs(ctx, req)
	if err != nil {
		err = wrap(c.r.name, err)
		for _, i := range group {
			out[i].Err = err
		}
		return
	}
	answered := make([]bool, len(group))
	at := answerIndex(ds, group)
	for k, r := range resp.GetResponses() {
		d, err := digest.FromProtoIn(f, r.GetDigest())
		if err != nil {
			continue
		}
		if j, ok := at(k, d); ok && !answered[j] {
			answered[j] = true
			out[group[j]] = c.batchEntry(d, r)
		}
	}
	for j, i := range group {
		if !answered[j] {
			out[i].Err = wrap(c.r.name, status.Errorf(codes.Internal, "BatchReadBlobs did not answer for blob %s", ds[i]))
		}
	}
}

// answerIndex returns a lookup from the k-th response entry, for digest d,
// to its position in group. Remotes answer in request order, which costs
// no map; any other order falls back to one.
func answerIndex(ds []digest.Digest, group []int) func(k int, d digest.Digest) (int, bool) {
	var pos map[digest.Digest]int
	return func(k int, d digest.Digest) (int, bool) {
		if k < len(group) && ds[group[k]] == d {
			return k, true
		}
		if pos == nil {
			pos = make(map[digest.Digest]int, len(group))
			for j, i := range group {
				pos[ds[i]] = j
			}
		}
		j, ok := pos[d]
		return j, ok
	}
}

// acceptCompressed lets the remote answer req compressed when it speaks
// zstd (it still answers identity what does not compress).
func (c *casClient) acceptCompressed(ctx context.Context, req *repb.BatchReadBlobsRequest) {
	if comp := c.r.batchCompressor(ctx); comp != repb.Compressor_IDENTITY {
		req.AcceptableCompressors = []repb.Compressor_Value{comp}
	}
}

// batchEntry turns one BatchReadBlobs response entry into a verified
// result, decoding a compressed one first (never past the digest's size).
func (c *casClient) batchEntry(d digest.Digest, r *repb.BatchReadBlobsResponse_Response) store.BlobResult {
	if s := status.FromProto(r.GetStatus()); s.Code() != codes.OK {
		return store.BlobResult{Err: wrap(c.r.name, status.Errorf(s.Code(), "blob %s: %s", d, s.Message()))}
	}
	c.r.metrics.received.Add(float64(len(r.GetData())))
	data, err := compression.Decode(r.GetCompressor(), r.GetData(), d.Size, codes.DataLoss)
	if err == nil {
		err = verify(d, data, codes.DataLoss)
	}
	if err != nil {
		return store.BlobResult{Err: wrap(c.r.name, status.Errorf(codes.DataLoss, "blob %s: %s", d, status.Convert(err).Message()))}
	}
	return store.BlobResult{Data: data, Verified: true}
}
