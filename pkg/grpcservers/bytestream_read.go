package grpcservers

import (
	"context"
	"errors"
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

// chunkPool recycles log stream buffers. gRPC encodes a message inside
// Send, so a buffer may be reused as soon as Send returns. (Blob reads use
// readBuffers, which gRPC sends without that copy.)
var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// LogStreams serves live log streams through ByteStream Read: the
// resource names an execution service publishes as stdout_stream_name and
// stderr_stream_name. *execution.Server implements it.
type LogStreams interface {
	// OpenLog returns a reader of the log stream called name from byte
	// offset on. Its Read blocks until data arrives and returns io.EOF once
	// the stream is complete; Close, from any goroutine, ends a blocked
	// Read. isLog is false when name is not a log stream name at all (it is
	// then read as a blob); an unknown stream is NOT_FOUND.
	OpenLog(name string, offset int64) (r io.ReadCloser, isLog bool, err error)
}

// byteStreamServer implements ByteStream over Backend.CAS, and over
// Options.Logs for log stream names. Safe for concurrent use.
type byteStreamServer struct {
	bspb.UnimplementedByteStreamServer
	backend  Backend
	logs     LogStreams
	uploads  *uploads
	readBufs *readBuffers
	metrics  *metrics
	maxWhole int64 // the largest compressed upload decoded in memory
	opts     Options
}

func newByteStreamServer(b Backend, opts Options, m *metrics) *byteStreamServer {
	return &byteStreamServer{
		backend:  b,
		logs:     opts.Logs,
		uploads:  newUploads(opts.Spooler, opts.UploadIdleTimeout, opts.MaxIdleUploads, opts.MaxIdleUploadBytes, opts.Logger),
		readBufs: newReadBuffers(opts.ReadBufferLimit, m),
		metrics:  m,
		maxWhole: opts.MaxBatchTotalSizeBytes,
		opts:     opts,
	}
}

// Read streams the requested range of a blob in chunkSize messages straight
// from the store reader; memory use is at most two chunks whatever the blob
// size, and all reads together stay within Options.ReadBufferLimit.
// Log stream names go to Options.Logs.
func (s *byteStreamServer) Read(req *bspb.ReadRequest, stream bspb.ByteStream_ReadServer) error {
	if s.logs != nil {
		if r, isLog, err := s.openLog(req); isLog {
			if err != nil {
				return err
			}
			return s.sendLog(stream, r, req.GetReadLimit())
		}
	}
	res, err := s.resource(digest.ParseReadResource(req.GetResourceName()))
	if err != nil {
		return err
	}
	if res.Compressor != "" {
		return s.readCompressed(req, res, stream)
	}
	n, err := readLength(res.Digest, req.GetReadOffset(), req.GetReadLimit())
	if err != nil {
		return err
	}
	r, err := s.openBlob(stream.Context(), res, req.GetReadOffset())
	if err != nil {
		return err
	}
	defer r.Close()
	return s.sendChunks(stream, r, n)
}

// resource checks the digest function of a parsed resource name (the
// {digest_function}/ segment, else inferred from the hash length, so an
// unnamed 64-character hash is SHA-256): one cache.digest-functions
// leaves out is INVALID_ARGUMENT naming digest_function.
func (s *byteStreamServer) resource(res digest.Resource, err error) (digest.Resource, error) {
	if err == nil {
		err = fieldError("resource_name", s.opts.checkFunction(res.Digest.Func))
	}
	return res, err
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

// sendChunks sends n bytes of r in chunkSize messages, each in a buffer
// from readBufs: a reader waits when too many are out.
func (s *byteStreamServer) sendChunks(stream bspb.ByteStream_ReadServer, r io.Reader, n int64) error {
	sent := s.metrics.sent.WithLabelValues(serviceByteStream)
	for n > 0 {
		bp, err := s.readBufs.get(stream.Context(), min(chunkSize, n))
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(r, *bp); err != nil {
			s.readBufs.lend(bp).Free()
			if _, ok := status.FromError(err); !ok {
				err = status.Errorf(codes.Internal, "read blob: %v", err)
			}
			return err
		}
		size, err := s.readBufs.sendLent(stream, bp)
		if err != nil {
			return err
		}
		sent.Add(float64(size))
		n -= int64(size)
	}
	return nil
}

// openLog opens req's resource as a log stream when it names one.
func (s *byteStreamServer) openLog(req *bspb.ReadRequest) (io.ReadCloser, bool, error) {
	r, isLog, err := s.logs.OpenLog(req.GetResourceName(), req.GetReadOffset())
	if err == nil && isLog && req.GetReadLimit() < 0 {
		r.Close()
		return nil, true, status.Errorf(codes.OutOfRange, "read_limit %d is negative", req.GetReadLimit())
	}
	return r, isLog, err
}

// sendLog sends what r yields as soon as it yields it, up to limit bytes
// (0: no limit), until r ends or the client goes away.
func (s *byteStreamServer) sendLog(stream bspb.ByteStream_ReadServer, r io.ReadCloser, limit int64) error {
	defer r.Close()
	stop := context.AfterFunc(stream.Context(), func() { r.Close() })
	defer stop()
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	sent := s.metrics.sent.WithLabelValues(serviceByteStream)
	for left := limit; limit == 0 || left > 0; {
		buf := *bp
		if limit > 0 {
			buf = buf[:min(int64(len(buf)), left)]
		}
		n, err := r.Read(buf)
		if n > 0 {
			if err := stream.Send(&bspb.ReadResponse{Data: buf[:n]}); err != nil {
				return err
			}
			sent.Add(float64(n))
			left -= int64(n)
		}
		if err != nil {
			return logReadError(stream.Context(), err)
		}
	}
	return nil
}

// logReadError is nil at the end of the stream, the context's error when
// the client went away, and err otherwise.
func logReadError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case status.Code(err) != codes.Unknown:
		return err
	}
	return status.Errorf(codes.Internal, "read log stream: %v", err)
}
