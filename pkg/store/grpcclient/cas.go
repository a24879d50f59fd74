package grpcclient

import (
	"bytes"
	"context"
	"io"
	"maps"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

const (
	// findMissingBatch is the most digests one FindMissingBlobs call asks
	// about; findMissingParallel bounds the calls one FindMissing runs at once.
	findMissingBatch    = 10000
	findMissingParallel = 4
	// smallBlobLimit is the largest blob sent or read through the batch
	// calls; larger ones go through ByteStream.
	smallBlobLimit = 1 << 20
	// defaultBatchLimit is used when the remote advertises no batch limit:
	// gRPC's default 4 MiB message limit with room for framing.
	defaultBatchLimit = 4<<20 - 64<<10
	// batchEntryOverhead is what one entry adds to a batch message beyond
	// its data (digest, status, field tags), rounded up.
	batchEntryOverhead = 256
	// minCompressSize is the smallest blob a batch entry compresses: below
	// it zstd's frame costs about what it saves.
	minCompressSize = 512
)

// casClient implements store.CAS over one remote's CAS and ByteStream
// services. Safe for concurrent use.
type casClient struct{ r *Remote }

// FindMissing asks in calls of at most findMissingBatch digests of one
// digest function each (a request names one function), a few at once.
// Duplicates and the empty blob (always present) are not sent.
func (c *casClient) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	uniq := make([]digest.Digest, 0, len(ds))
	seen := digest.NewSet()
	for _, d := range ds {
		if !d.IsEmpty() && !seen.Has(d) {
			seen.Add(d)
			uniq = append(uniq, d)
		}
	}
	var mu sync.Mutex
	var missing []digest.Digest
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(findMissingParallel)
	for _, run := range byFunction(uniq) {
		for start := 0; start < len(run); start += findMissingBatch {
			chunk := run[start:min(start+findMissingBatch, len(run))]
			g.Go(func() error {
				m, err := c.findMissing(gctx, chunk)
				mu.Lock()
				missing = append(missing, m...)
				mu.Unlock()
				return err
			})
		}
	}
	return missing, g.Wait()
}

// findMissing asks about ds, all of one function, in one call; the
// answer's digests are of that function.
func (c *casClient) findMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	f := ds[0].Func
	req := &repb.FindMissingBlobsRequest{InstanceName: c.r.instance, BlobDigests: make([]*repb.Digest, len(ds)), DigestFunction: fnField(f)}
	for i, d := range ds {
		req.BlobDigests[i] = d.Proto()
	}
	resp, err := c.r.cas.FindMissingBlobs(ctx, req)
	if err != nil {
		return nil, wrap(c.r.name, err)
	}
	missing := make([]digest.Digest, 0, len(resp.GetMissingBlobDigests()))
	for _, p := range resp.GetMissingBlobDigests() {
		d, err := digest.FromProtoIn(f, p)
		if err != nil {
			return nil, wrap(c.r.name, status.Errorf(codes.Internal, "FindMissingBlobs answered an invalid digest: %v", status.Convert(err).Message()))
		}
		missing = append(missing, d)
	}
	return missing, nil
}

// batchLimit is the remote's advertised max_batch_total_size_bytes, or
// defaultBatchLimit when it advertises none or has no Capabilities service.
func (r *Remote) batchLimit(ctx context.Context) (int64, error) {
	caps, err := r.Capabilities(ctx)
	if status.Code(err) == codes.Unimplemented {
		return defaultBatchLimit, nil
	}
	if err != nil {
		return 0, err
	}
	if n := caps.GetCacheCapabilities().GetMaxBatchTotalSizeBytes(); n > 0 {
		return n, nil
	}
	return defaultBatchLimit, nil
}

// batchable reports whether a blob of size goes through the batch calls.
func batchable(size, limit int64) bool {
	return size <= smallBlobLimit && size+batchEntryOverhead <= limit
}

// Put verifies the bytes of r against d while sending them: small blobs in
// one BatchUpdateBlobs call, larger ones through ByteStream Write.
func (c *casClient) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if d.IsEmpty() {
		return nil
	}
	limit, err := c.r.batchLimit(ctx)
	if err != nil {
		return err
	}
	if !batchable(d.Size, limit) {
		return c.write(ctx, d, r)
	}
	b, err := io.ReadAll(io.LimitReader(r, d.Size+1))
	if err != nil {
		return status.Errorf(status.Code(err), "blob %s: reading the data to upload: %v", d, err)
	}
	if err := verify(d, b, codes.InvalidArgument); err != nil {
		return err
	}
	return c.batchUpdate(ctx, []blob{{d, b}})
}

// PutWith is Put: the hints change nothing for an upload.
func (c *casClient) PutWith(ctx context.Context, d digest.Digest, r io.Reader, _ store.PutHint) error {
	return c.Put(ctx, d, r)
}

// PutBytes is Put from a reader over data, verified whatever the hint
// says: an upload must never send bytes the remote would reject.
func (c *casClient) PutBytes(ctx context.Context, d digest.Digest, data []byte, _ store.PutHint) error {
	return c.Put(ctx, d, bytes.NewReader(data))
}

// verify checks b against d (with d's function); a mismatch is an error
// with code.
func verify(d digest.Digest, b []byte, code codes.Code) error {
	if got := digest.OfBytesIn(d.Func, b); got != d {
		return status.Errorf(code, "blob %s: bytes hash to %s", d, got)
	}
	return nil
}

// blob is a small blob held in memory, for the batch calls.
type blob struct {
	d    digest.Digest
	data []byte
}

// batchUpdate sends blobs, all of one digest function, in one
// BatchUpdateBlobs call.
func (c *casClient) batchUpdate(ctx context.Context, blobs []blob) error {
	req := &repb.BatchUpdateBlobsRequest{InstanceName: c.r.instance, DigestFunction: fnField(blobs[0].d.Func)}
	comp := c.r.batchCompressor(ctx)
	var n int
	for _, b := range blobs {
		e := batchUpdateEntry(comp, b)
		req.Requests = append(req.Requests, e)
		n += len(e.Data)
	}
	resp, err := c.r.cas.BatchUpdateBlobs(ctx, req)
	if err != nil {
		return wrap(c.r.name, err)
	}
	for _, r := range resp.GetResponses() {
		if s := status.FromProto(r.GetStatus()); s.Code() != codes.OK {
			return wrap(c.r.name, status.Errorf(s.Code(), "blob %s/%d: %s", r.GetDigest().GetHash(), r.GetDigest().GetSizeBytes(), s.Message()))
		}
	}
	c.r.metrics.sent.Add(float64(n))
	return nil
}

// batchUpdateEntry is b as a BatchUpdateBlobs entry: compressed with comp
// when that pays (compression.Pays), identity otherwise.
func batchUpdateEntry(comp repb.Compressor_Value, b blob) *repb.BatchUpdateBlobsRequest_Request {
	e := &repb.BatchUpdateBlobsRequest_Request{Digest: b.d.Proto(), Data: b.data}
	if comp == repb.Compressor_IDENTITY || len(b.data) < minCompressSize {
		return e
	}
	if z := compression.Encode(comp, nil, b.data); compression.Pays(len(z), len(b.data)) {
		e.Data, e.Compressor = z, comp
	}
	return e
}

// putMany uploads blobs, packing the small ones into batches of one digest
// function each that fit the remote's limit and sending the others
// through ByteStream.
func (c *casClient) putMany(ctx context.Context, blobs map[digest.Digest][]byte) error {
	limit, err := c.r.batchLimit(ctx)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(findMissingParallel)
	type batch struct {
		blobs []blob
		size  int64
	}
	batches := map[digest.Function]*batch{}
	flush := func(b *batch) {
		if bs := b.blobs; len(bs) > 0 {
			g.Go(func() error { return c.batchUpdate(gctx, bs) })
		}
		b.blobs, b.size = nil, 0
	}
	flushAll := func() {
		for _, b := range batches {
			flush(b)
		}
	}
	for d, data := range blobs {
		if err := verify(d, data, codes.InvalidArgument); err != nil {
			flushAll()
			_ = g.Wait()
			return err
		}
		switch entry := int64(len(data)) + batchEntryOverhead; {
		case d.IsEmpty():
		case !batchable(d.Size, limit):
			g.Go(func() error { return c.write(gctx, d, bytes.NewReader(data)) })
		default:
			b := batches[d.Func]
			if b == nil {
				b = &batch{}
				batches[d.Func] = b
			}
			if b.size+entry > limit {
				flush(b)
			}
			b.blobs, b.size = append(b.blobs, blob{d, data}), b.size+entry
		}
	}
	flushAll()
	return g.Wait()
}

// PutMany uploads blobs (digest to bytes, each verified first) in as few
// calls as the remote's batch limit allows; blobs too large for a batch go
// through ByteStream. It is meant for write-back of many small blobs. It
// honours the CAS role's circuit breaker and digest-function gate like
// CAS().Put: blobs of a function the remote does not take are not sent,
// and the others having been uploaded, the result is a
// *store.UnsupportedFunctionError.
func (r *Remote) PutMany(ctx context.Context, blobs map[digest.Digest][]byte) error {
	b := r.breakers[RoleCAS]
	g := gate{r, b}
	var unsupported error
	for d := range blobs {
		err := g.takes(ctx, d.Func)
		if err != nil && !store.IsUnsupportedFunction(err) {
			return err
		}
		if err != nil {
			if unsupported == nil {
				unsupported = err
				blobs = maps.Clone(blobs)
			}
			delete(blobs, d)
		}
	}
	if len(blobs) > 0 {
		if err := b.allow(); err != nil {
			return err
		}
		if err := b.doneWith(ctx, (&casClient{r}).putMany(ctx, blobs)); err != nil {
			return err
		}
	}
	return unsupported
}
