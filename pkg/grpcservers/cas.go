package grpcservers

import (
	"context"
	"fmt"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	if err := checkDigestFunction(req.GetDigestFunction()); err != nil {
		return nil, err
	}
	ds, err := digestsFromProto("blob_digests", req.GetBlobDigests())
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
	if err := checkDigestFunction(req.GetDigestFunction()); err != nil {
		return nil, err
	}
	var total int64
	for _, r := range req.GetRequests() {
		total += int64(len(r.GetData()))
	}
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
			resps[i].Status = statusProto(updateOne(ctx, cas, i, r))
			return nil
		})
	}
	_ = g.Wait() // goroutines report per blob and never fail the group
	return &repb.BatchUpdateBlobsResponse{Responses: resps}, nil
}

// updateOne validates and stores one entry of a BatchUpdateBlobs request.
func updateOne(ctx context.Context, cas store.CAS, i int, r *repb.BatchUpdateBlobsRequest_Request) error {
	d, err := digest.FromProto(r.GetDigest())
	if err != nil {
		return fieldError(fmt.Sprintf("requests[%d].digest", i), err)
	}
	if c := r.GetCompressor(); c != repb.Compressor_IDENTITY {
		return status.Errorf(codes.InvalidArgument, "requests[%d].compressor: %s is not supported", i, c)
	}
	if int64(len(r.GetData())) != d.Size {
		return status.Errorf(codes.InvalidArgument, "requests[%d].data: %d bytes, but the digest says %d", i, len(r.GetData()), d.Size)
	}
	if err := cas.PutBytes(ctx, d, r.GetData(), store.PutHint{}); err != nil {
		return prefixError(fmt.Sprintf("requests[%d]", i), err)
	}
	return nil
}

func (s *casServer) BatchReadBlobs(ctx context.Context, req *repb.BatchReadBlobsRequest) (*repb.BatchReadBlobsResponse, error) {
	if err := checkDigestFunction(req.GetDigestFunction()); err != nil {
		return nil, err
	}
	ds, err := digestsFromProto("digests", req.GetDigests())
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

// statusProto turns a handler error into a per-entry status (OK for nil).
func statusProto(err error) *spb.Status {
	if err == nil {
		return &spb.Status{} // OK, without status.Convert's allocations
	}
	return status.Convert(err).Proto()
}
