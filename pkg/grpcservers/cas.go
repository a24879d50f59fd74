package grpcservers

import (
	"context"
	"fmt"
	"slices"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// batchParallelism bounds the store calls one batch runs at once. A small
// blob's Put or Get is dominated by waiting (the index groups commits), not
// by CPU, so far more calls than cores must be in flight to keep the store
// busy; each costs one goroutine.
const batchParallelism = 32

// casServer implements ContentAddressableStorage over Backend.CAS. The
// GetTree method lives in get_tree.go.
type casServer struct {
	repb.UnimplementedContentAddressableStorageServer
	backend Backend
	opts    Options
	metrics *metrics
}

func (s *casServer) FindMissingBlobs(ctx context.Context, req *repb.FindMissingBlobsRequest) (*repb.FindMissingBlobsResponse, error) {
	fn, err := s.opts.requestFunction(req.GetDigestFunction(), firstHash(req.GetBlobDigests()))
	if err != nil {
		return nil, err
	}
	ds, err := digestsFromProto(fn, "blob_digests", req.GetBlobDigests())
	if err != nil {
		return nil, err
	}
	cas, err := s.backend.CAS(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	missing, err := cas.FindMissing(ctx, ds)
	if err != nil {
		return nil, err
	}
	return &repb.FindMissingBlobsResponse{MissingBlobDigests: digestsToProto(missing)}, nil
}

func (s *casServer) BatchUpdateBlobs(ctx context.Context, req *repb.BatchUpdateBlobsRequest) (*repb.BatchUpdateBlobsResponse, error) {
	var sample string
	if rs := req.GetRequests(); len(rs) > 0 {
		sample = rs[0].GetDigest().GetHash()
	}
	fn, err := s.opts.requestFunction(req.GetDigestFunction(), sample)
	if err != nil {
		return nil, err
	}
	total := updateSize(req)
	if total > s.opts.MaxBatchTotalSizeBytes {
		return nil, status.Errorf(codes.InvalidArgument, "requests: %d bytes of blobs exceed max_batch_total_size_bytes %d; use ByteStream", total, s.opts.MaxBatchTotalSizeBytes)
	}
	cas, err := s.backend.CAS(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	s.metrics.received.WithLabelValues(serviceCAS).Add(float64(total))
	resps := make([]*repb.BatchUpdateBlobsResponse_Response, len(req.GetRequests()))
	var g errgroup.Group
	g.SetLimit(batchParallelism)
	for i, r := range req.GetRequests() {
		resps[i] = &repb.BatchUpdateBlobsResponse_Response{Digest: r.GetDigest()}
		g.Go(func() error {
			resps[i].Status = statusProto(updateOne(ctx, cas, fn, i, r))
			return nil
		})
	}
	_ = g.Wait() // goroutines report per blob and never fail the group
	return &repb.BatchUpdateBlobsResponse{Responses: resps}, nil
}

// updateSize is what a BatchUpdateBlobs request counts against
// max_batch_total_size_bytes: the size of its blobs, which for a
// compressed entry is the larger of its data and the size its digest
// declares (so the batch's memory once decoded is bounded by the limit
// too, and the limit means what the REAPI says, "total size of blobs").
func updateSize(req *repb.BatchUpdateBlobsRequest) int64 {
	var total int64
	for _, r := range req.GetRequests() {
		n := int64(len(r.GetData()))
		if r.GetCompressor() != repb.Compressor_IDENTITY {
			n = max(n, r.GetDigest().GetSizeBytes())
		}
		total += n
	}
	return total
}

// updateOne validates, decodes when compressed, and stores one entry of
// a BatchUpdateBlobs request whose function is fn. The store verifies the
// decoded bytes with fn.
func updateOne(ctx context.Context, cas store.CAS, fn digest.Function, i int, r *repb.BatchUpdateBlobsRequest_Request) error {
	d, err := digest.FromProtoIn(fn, r.GetDigest())
	if err != nil {
		return fieldError(fmt.Sprintf("requests[%d].digest", i), err)
	}
	if c := r.GetCompressor(); !compression.IsSupported(c) {
		return status.Errorf(codes.InvalidArgument, "requests[%d].compressor: %s is not supported (supported: ZSTD)", i, c)
	}
	data, err := compression.Decode(r.GetCompressor(), r.GetData(), d.Size, codes.InvalidArgument)
	if err != nil {
		return prefixError(fmt.Sprintf("requests[%d].data", i), err)
	}
	if err := cas.PutBytes(ctx, d, data, store.PutHint{}); err != nil {
		return prefixError(fmt.Sprintf("requests[%d]", i), err)
	}
	return nil
}

func (s *casServer) BatchReadBlobs(ctx context.Context, req *repb.BatchReadBlobsRequest) (*repb.BatchReadBlobsResponse, error) {
	fn, err := s.opts.requestFunction(req.GetDigestFunction(), firstHash(req.GetDigests()))
	if err != nil {
		return nil, err
	}
	ds, err := digestsFromProto(fn, "digests", req.GetDigests())
	if err != nil {
		return nil, err
	}
	var total int64
	for _, d := range ds {
		total += d.Size
	}
	if total > s.opts.MaxBatchTotalSizeBytes {
		return nil, status.Errorf(codes.InvalidArgument, "digests: %d bytes of blobs exceed max_batch_total_size_bytes %d; use ByteStream", total, s.opts.MaxBatchTotalSizeBytes)
	}
	cas, err := s.backend.CAS(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	resps := readBlobs(ctx, cas, req.GetDigests(), ds)
	if slices.Contains(req.GetAcceptableCompressors(), repb.Compressor_ZSTD) {
		compressBlobs(resps)
	}
	var sent int
	for _, r := range resps {
		sent += len(r.Data)
	}
	s.metrics.sent.WithLabelValues(serviceCAS).Add(float64(sent))
	return &repb.BatchReadBlobsResponse{Responses: resps}, nil
}

// readBlobs reads the blobs of a BatchReadBlobs request with one GetMany
// call (the fan-out then asks a remote for all its misses at once).
func readBlobs(ctx context.Context, cas store.CAS, pds []*repb.Digest, ds []digest.Digest) []*repb.BatchReadBlobsResponse_Response {
	resps := make([]*repb.BatchReadBlobsResponse_Response, len(ds))
	backing := make([]repb.BatchReadBlobsResponse_Response, len(ds))
	for i := range resps {
		resps[i] = &backing[i]
		resps[i].Digest = pds[i]
	}
	for i, r := range cas.GetMany(ctx, ds) {
		resps[i].Data, resps[i].Status = r.Data, statusProto(r.Err)
	}
	return resps
}

// minCompressSize is the smallest blob a BatchReadBlobs answer compresses:
// below it zstd's frame costs about what it saves.
const minCompressSize = 512

// compressBlobs replaces the data of each answered blob with its zstd
// form when that pays (compression.Pays: it saves at least an eighth);
// other blobs, small ones and incompressible ones, stay identity, which
// every client accepts.
func compressBlobs(resps []*repb.BatchReadBlobsResponse_Response) {
	for _, r := range resps {
		if len(r.Data) < minCompressSize {
			continue
		}
		if z := compression.Encode(repb.Compressor_ZSTD, nil, r.Data); compression.Pays(len(z), len(r.Data)) {
			r.Data, r.Compressor = z, repb.Compressor_ZSTD
		}
	}
}

// statusProto turns a handler error into a per-entry status (OK for nil).
func statusProto(err error) *spb.Status {
	if err == nil {
		return &spb.Status{} // OK, without status.Convert's allocations
	}
	return status.Convert(err).Proto()
}
