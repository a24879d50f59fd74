package proxy

import (
	"io"
	"sync"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// chunkSize is the payload of one ByteStream ReadResponse: large enough to
// amortise per-message cost, small enough for any client's 4 MiB limit.
const chunkSize = 1 << 20

// chunkPool recycles Read buffers. gRPC encodes a message inside Send, so a
// buffer may be reused as soon as Send returns.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// byteStreamServer implements ByteStream over Backend.CAS. Safe for
// concurrent use.
type byteStreamServer struct {
	bspb.UnimplementedByteStreamServer
	backend Backend
	uploads *uploads
	metrics *metrics
}

func newByteStreamServer(b Backend, opts Options, m *metrics) *byteStreamServer {
	return &byteStreamServer{
		backend: b,
		uploads: newUploads(opts.UploadIdleTimeout, opts.Logger),
		metrics: m,
	}
}

// Read streams the requested range of a blob in chunkSize messages straight
// from the store reader; memory use is one chunk whatever the blob size.
func (s *byteStreamServer) Read(req *bspb.ReadRequest, stream bspb.ByteStream_ReadServer) error {
	res, err := digest.ParseReadResource(req.GetResourceName())
	if err != nil {
		return err
	}
	if res.Compressor != "" {
		return status.Errorf(codes.InvalidArgument, "resource_name: compressor %q is not supported", res.Compressor)
	}
	n, err := readLength(res.Digest, req.GetReadOffset(), req.GetReadLimit())
	if err != nil {
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
	return s.sendChunks(stream, r, n)
}

// readLength checks read_offset and read_limit against d and returns how
// many bytes to send.
func readLength(d digest.Digest, offset, limit int64) (int64, error) {
	if offset < 0 || offset > d.Size {
		return 0, status.Errorf(codes.OutOfRange, "read_offset %d is outside blob %s", offset, d)
	}
	if limit < 0 {
		return 0, status.Errorf(codes.OutOfRange, "read_limit %d is negative", limit)
	}
	n := d.Size - offset
	if limit > 0 && limit < n {
		n = limit
	}
	return n, nil
}

func (s *byteStreamServer) sendChunks(stream bspb.ByteStream_ReadServer, r io.Reader, n int64) error {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	sent := s.metrics.sent.WithLabelValues(serviceByteStream)
	for n > 0 {
		buf := (*bp)[:min(int64(len(*bp)), n)]
		if _, err := io.ReadFull(r, buf); err != nil {
			if _, ok := status.FromError(err); ok {
				return err
			}
			return status.Errorf(codes.Internal, "read blob: %v", err)
		}
		if err := stream.Send(&bspb.ReadResponse{Data: buf}); err != nil {
			return err
		}
		sent.Add(float64(len(buf)))
		n -= int64(len(buf))
	}
	return nil
}
