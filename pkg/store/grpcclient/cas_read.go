package grpcclient

import (
	"bytes"
	"context"
	"hash"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Get reads small blobs with one BatchReadBlobs call and verifies them
// before returning; larger blobs stream through ByteStream Read, verified
// while streaming when offset is 0: on a mismatch the Read that would hand
// out the last chunk fails with DATA_LOSS instead. Bad bytes are never
// returned as good. A suffix (offset > 0) cannot be verified here; the
// caller's store verifies whole blobs.
func (c *casClient) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.GetWith(ctx, d, offset, store.GetHint{})
}

// GetWith is Get; a stream read for a consumer that hashes it itself
// (hint.ConsumerVerifies) is checked for its size only.
func (c *casClient) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	if offset < 0 || offset > d.Size {
		return nil, status.Errorf(codes.OutOfRange, "offset %d outside blob %s", offset, d)
	}
	if d.IsEmpty() {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	limit, err := c.r.batchLimit(ctx)
	if err != nil {
		return nil, err
	}
	if batchable(d.Size, limit) {
		b, err := c.batchRead(ctx, d)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b[offset:])), nil
	}
	if comp := c.r.streamCompressor(ctx); comp != repb.Compressor_IDENTITY {
		return c.openCompressed(ctx, comp, d, offset, !hint.ConsumerVerifies)
	}
	return c.openStream(ctx, d, offset, hint)
}

func (c *casClient) batchRead(ctx context.Context, d digest.Digest) ([]byte, error) {
	req := &repb.BatchReadBlobsRequest{InstanceName: c.r.instance, Digests: []*repb.Digest{d.Proto()}, DigestFunction: fnField(d.Func)}
	c.acceptCompressed(ctx, req)
	resp, err := c.r.cas.BatchReadBlobs(ctx, req)
	if err != nil {
		return nil, wrap(c.r.name, err)
	}
	rs := resp.GetResponses()
	if len(rs) != 1 {
		return nil, wrap(c.r.name, status.Errorf(codes.Internal, "BatchReadBlobs answered %d responses for 1 digest", len(rs)))
	}
	res := c.batchEntry(d, rs[0])
	return res.Data, res.Err
}

// openStream starts a ByteStream read and waits for its first message, so
// that NOT_FOUND and an unreachable remote are Get's error rather than the
// first Read's.
func (c *casClient) openStream(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	sctx, cancel := context.WithCancel(ctx)
	s := &streamReader{c: c, ctx: sctx, cancel: cancel, d: d, pos: offset}
	if offset == 0 && !hint.ConsumerVerifies {
		s.h = d.NewHasher()
	}
	for len(s.buf) == 0 && s.err == nil {
		s.fill()
	}
	if s.err != nil && s.err != io.EOF {
		cancel()
		return nil, s.err
	}
	return s, nil
}

// streamReader yields one blob from ByteStream Read. A stream that breaks
// with a transient code is resumed at the next byte (read_offset), within
// the retry budget, which progress refills. Not safe for concurrent use.
type streamReader struct {
	c      *casClient
	ctx    context.Context
	cancel context.CancelFunc
	d      digest.Digest
	pos    int64     // blob offset of the next byte to receive
	h      hash.Hash // nil when reading from an offset (a suffix cannot be verified) or when the consumer verifies
	stream bspb.ByteStream_ReadClient
	buf    []byte
	err    error // sticky; io.EOF once the blob is complete and verified
	retry  retryState
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 && s.err == nil {
		s.fill()
	}
	if len(s.buf) == 0 {
		return 0, s.err
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Close ends the stream; it never fails.
func (s *streamReader) Close() error {
	s.cancel()
	return nil
}

// fill receives the next message into buf, or sets err.
func (s *streamReader) fill() {
	if s.stream == nil {
		req := &bspb.ReadRequest{ResourceName: digest.ReadResourceName(s.c.r.instance, s.d), ReadOffset: s.pos}
		stream, err := s.c.r.bs.Read(s.ctx, req)
		if err != nil {
			s.failed(err)
			return
		}
		s.stream = stream
	}
	resp, err := s.stream.Recv()
	switch {
	case err == io.EOF:
		s.err = s.finish()
	case err != nil:
		s.failed(err)
	default:
		s.err = s.accept(resp.GetData())
	}
}

// failed resumes after a transient error or makes err final.
func (s *streamReader) failed(err error) {
	s.stream = nil
	if !s.c.r.retry.again(s.ctx, &s.retry, err, false) {
		s.err = wrap(s.c.r.name, err)
	}
}

func (s *streamReader) accept(data []byte) error {
	if int64(len(data)) > s.d.Size-s.pos {
		return s.dataLoss("the remote sent more than %d bytes", s.d.Size)
	}
	s.pos += int64(len(data))
	if s.h != nil {
		s.h.Write(data)
		// Check on the last byte, before handing out the last chunk, so a
		// caller never holds the whole of a corrupt blob.
		if s.pos == s.d.Size {
			if got := digest.HashString(s.h); got != s.d.Hash {
				return s.dataLoss("bytes hash to %s", got)
			}
		}
	}
	s.buf = data
	s.c.r.metrics.received.Add(float64(len(data)))
	if len(data) > 0 {
		s.retry.attempt = 0 // progress: the retry budget is per stall, not per blob
	}
	return nil
}

func (s *streamReader) finish() error {
	s.cancel()
	if s.pos != s.d.Size {
		return s.dataLoss("the stream ended after %d of %d bytes", s.pos, s.d.Size)
	}
	return io.EOF
}

func (s *streamReader) dataLoss(format string, args ...any) error {
	s.cancel()
	return wrap(s.c.r.name, status.Errorf(codes.DataLoss, "blob %s: "+format, append([]any{s.d}, args...)...))
}
