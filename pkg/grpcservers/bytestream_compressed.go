package grpcservers

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/pkg/digest"
)

// readCompressed serves a compressed-blobs read: the blob from
// read_offset (an offset in the uncompressed blob, as REAPI says)
// compressed as one zstd stream, in messages of at most chunkSize. The
// store keeps blobs uncompressed, so this costs zstd's encoding speed per
// read (see BENCHMARKS.md); memory is one pooled encoder, and chunks
// filled in buffers counted against ReadBufferLimit like those of
// identity reads (a stalled client holds at most two).
// REAPI requires read_limit 0 for compressed reads.
func (s *byteStreamServer) readCompressed(req *bspb.ReadRequest, res digest.Resource, stream bspb.ByteStream_ReadServer) error {
	if _, err := compression.FromName(res.Compressor); err != nil {
		return err
	}
	if req.GetReadLimit() != 0 {
		return status.Errorf(codes.InvalidArgument, "read_limit %d: must be 0 for a compressed-blobs read", req.GetReadLimit())
	}
	if _, err := readLength(res.Digest, req.GetReadOffset(), 0); err != nil {
		return err
	}
	r, err := s.openBlob(stream.Context(), res, req.GetReadOffset())
	if err != nil {
		return err
	}
	defer r.Close()
	out := &chunkWriter{rb: s.readBufs, stream: stream, sent: s.metrics.sent.WithLabelValues(serviceByteStream)}
	w := compression.NewWriter(out)
	_, err = w.ReadFrom(r)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = out.Flush()
	}
	out.Close() // after w.Close: the encoder writes no more
	if _, ok := status.FromError(err); !ok {
		err = status.Errorf(codes.Internal, "read blob %s: %v", res.Digest, err)
	}
	return err
}

// compressorOf returns the compressor a parsed write resource names
// (identity for a plain blobs resource), or INVALID_ARGUMENT for one
// castd does not support.
func compressorOf(res digest.Resource) (repb.Compressor_Value, error) {
	if res.Compressor == "" {
		return repb.Compressor_IDENTITY, nil
	}
	return compression.FromName(res.Compressor)
}

// uploadName is the canonical name an upload of res is kept under: a
// compressed upload and a plain one of the same blob and uuid are two
// uploads (their committed sizes count different bytes), and so are a
// SHA-256 and a BLAKE3 upload of the same hex: the name carries the
// digest function (Digest.String leads with it whenever the hash length
// does not imply it), and an upload is verified with its digest's.
func uploadName(res digest.Resource, c repb.Compressor_Value) string {
	if c == repb.Compressor_IDENTITY {
		return digest.WriteResourceName(res.Instance, res.UploadID, res.Digest)
	}
	return digest.CompressedWriteResourceName(res.Instance, res.UploadID, compression.Name(c), res.Digest)
}

// decodeWhole decodes a compressed blob that arrived in one request.
func decodeWhole(c repb.Compressor_Value, data []byte, d digest.Digest) ([]byte, error) {
	b, err := compression.Decode(c, data, d.Size, codes.InvalidArgument)
	if err != nil {
		return nil, prefixError("data", err)
	}
	return b, nil
}

// openBlob opens res's blob in its instance's CAS from offset.
func (s *byteStreamServer) openBlob(ctx context.Context, res digest.Resource, offset int64) (io.ReadCloser, error) {
	cas, err := s.backend.CAS(ctx, res.Instance)
	if err != nil {
		return nil, err
	}
	return cas.Get(ctx, res.Digest, offset)
}
