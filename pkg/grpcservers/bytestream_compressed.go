package grpcservers

import (
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
// read (see BENCHMARKS.md); memory is one pooled encoder and one chunk.
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
	cas, err := s.backend.CAS(stream.Context(), res.Instance)
	if err != nil {
		return err
	}
	r, err := cas.Get(stream.Context(), res.Digest, req.GetReadOffset())
	if err != nil {
		return err
	}
	defer r.Close()
	out := &chunkSender{stream: stream, buf: make([]byte, 0, chunkSize), s: s}
	w := compression.NewWriter(out)
	_, err = w.ReadFrom(r)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = out.flush()
	}
	if _, ok := status.FromError(err); !ok {
		err = status.Errorf(codes.Internal, "read blob %s: %v", res.Digest, err)
	}
	return err
}

// chunkSender sends what is written to it as ReadResponses of chunkSize
// bytes (the last one shorter, on flush).
type chunkSender struct {
	stream bspb.ByteStream_ReadServer
	buf    []byte
	s      *byteStreamServer
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf, p = c.buf[:len(c.buf)+k], p[k:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush sends what is buffered, if anything.
func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if err := c.stream.Send(&bspb.ReadResponse{Data: c.buf}); err != nil {
		return err
	}
	c.s.metrics.sent.WithLabelValues(serviceByteStream).Add(float64(len(c.buf)))
	c.buf = c.buf[:0]
	return nil
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
// uploads (their committed sizes count different bytes).
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
