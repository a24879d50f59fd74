package grpcclient

import (
	"context"
	"hash"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/uuid"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/pkg/digest"
)

// streamCompressor is the compressor of ByteStream reads and writes to r:
// the first of r's compressors its Capabilities list in
// supported_compressors (zstd toward a remote across a network, where it
// saves bandwidth), identity otherwise, and identity when Capabilities
// cannot be had (the batch limit has already reported that).
func (r *Remote) streamCompressor(ctx context.Context) repb.Compressor_Value {
	return r.pick(ctx, compression.Offers)
}

// batchCompressor is the compressor of BatchUpdateBlobs entries to r and
// what BatchReadBlobs accepts from it: as streamCompressor, from
// supported_batch_update_compressors.
func (r *Remote) batchCompressor(ctx context.Context) repb.Compressor_Value {
	return r.pick(ctx, compression.OffersBatch)
}

// pick returns the first of r's compressors that offers says the remote
// supports, or identity.
func (r *Remote) pick(ctx context.Context, offers func(*repb.CacheCapabilities, repb.Compressor_Value) bool) repb.Compressor_Value {
	if len(r.compressors) == 0 {
		return repb.Compressor_IDENTITY
	}
	caps, err := r.Capabilities(ctx)
	if err != nil {
		return repb.Compressor_IDENTITY
	}
	for _, c := range r.compressors {
		if offers(caps.GetCacheCapabilities(), c) {
			return c
		}
	}
	return repb.Compressor_IDENTITY
}

// compressedReader yields a blob from a compressed-blobs ByteStream read,
// decoded as it arrives (never more than the digest's size) and verified
// like streamReader: hashed when read from offset 0 unless the consumer
// verifies, the last Read failing with DATA_LOSS on a mismatch. A stream
// that breaks with a transient code is read again, compressed, from the
// next uncompressed byte, within the retry budget. Not safe for
// concurrent use.
type compressedReader struct {
	c      *casClient
	ctx    context.Context
	cancel context.CancelFunc
	comp   repb.Compressor_Value
	d      digest.Digest
	pos    int64     // uncompressed offset of the next byte
	h      hash.Hash // as streamReader's
	src    *messageReader
	dec    *compression.Reader
	err    error // sticky
	retry  retryState
}

// openCompressed starts a compressed read of d from offset and waits for
// its first message (as openStream does).
func (c *casClient) openCompressed(ctx context.Context, comp repb.Compressor_Value, d digest.Digest, offset int64, verify bool) (io.ReadCloser, error) {
	sctx, cancel := context.WithCancel(ctx)
	s := &compressedReader{c: c, ctx: sctx, cancel: cancel, comp: comp, d: d, pos: offset}
	if offset == 0 && verify {
		s.h = d.NewHasher()
	}
	for s.dec == nil && s.err == nil {
		if err := s.open(); err != nil {
			s.failed(err)
		}
	}
	if s.err != nil {
		cancel()
		return nil, s.err
	}
	return s, nil
}

// open starts the read at pos and receives its first message.
func (s *compressedReader) open() error {
	name := digest.CompressedReadResourceName(s.c.r.instance, compression.Name(s.comp), s.d)
	stream, err := s.c.r.bs.Read(s.ctx, &bspb.ReadRequest{ResourceName: name, ReadOffset: s.pos})
	if err != nil {
		return err
	}
	src := &messageReader{stream: stream, r: s.c.r}
	if err := src.fill(); err != nil && err != io.EOF {
		return err
	}
	s.src = src
	s.dec = compression.NewReader(s.comp, src, s.d.Size-s.pos, codes.DataLoss)
	return nil
}

func (s *compressedReader) Read(p []byte) (int, error) {
	for s.err == nil {
		if s.dec == nil {
			if err := s.open(); err != nil {
				s.failed(err)
			}
			continue
		}
		n, err := s.dec.Read(p)
		if n > 0 {
			return s.accept(p[:n])
		}
		if err == io.EOF {
			s.err = io.EOF
			s.cancel()
			break
		}
		s.dec.Close()
		s.dec = nil
		s.failed(err)
	}
	return 0, s.err
}

// accept counts and hashes n decoded bytes; the last ones are held back
// with DATA_LOSS when the blob does not hash to its digest.
func (s *compressedReader) accept(b []byte) (int, error) {
	s.pos += int64(len(b))
	s.retry.attempt = 0 // progress: the retry budget is per stall
	if s.h != nil {
		s.h.Write(b)
		if s.pos == s.d.Size {
			if got := digest.HashString(s.h); got != s.d.Hash {
				s.err = wrap(s.c.r.name, status.Errorf(codes.DataLoss, "blob %s: bytes hash to %s", s.d, got))
				s.cancel()
				return 0, s.err
			}
		}
	}
	return len(b), nil
}

// failed retries a transient error (from pos) or makes err final.
func (s *compressedReader) failed(err error) {
	if !s.c.r.retry.again(s.ctx, &s.retry, err, false) {
		s.err = wrap(s.c.r.name, err)
		s.cancel()
	}
}

// Close ends the stream and releases the decoder; it never fails.
func (s *compressedReader) Close() error {
	s.cancel()
	if s.dec != nil {
		s.dec.Close()
		s.dec = nil
	}
	return nil
}

// messageReader reads the data of a ByteStream Read's messages as one
// stream: the compressed bytes the decoder takes.
type messageReader struct {
	stream bspb.ByteStream_ReadClient
	r      *Remote
	buf    []byte
	err    error
}

// fill receives the next message into buf.
func (m *messageReader) fill() error {
	resp, err := m.stream.Recv()
	if err != nil {
		m.err = err
		return err
	}
	m.buf = resp.GetData()
	m.r.metrics.received.Add(float64(len(m.buf)))
	return nil
}

func (m *messageReader) Read(p []byte) (int, error) {
	for len(m.buf) == 0 {
		if m.err != nil {
			return 0, m.err
		}
		_ = m.fill()
	}
	n := copy(p, m.buf)
	m.buf = m.buf[n:]
	return n, nil
}

// writeCompressed uploads a blob through a compressed-blobs ByteStream
// Write: it reads r in writeChunk pieces, hashes them and compresses them
// into WriteRequests of at most writeChunk compressed bytes. The digest
// is checked after the last input byte and before the encoder's last
// bytes go out with finish_write, so a remote never commits bytes that do
// not match d. Not retried, as write.
func (c *casClient) writeCompressed(ctx context.Context, comp repb.Compressor_Value, d digest.Digest, r io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.r.bs.Write(ctx)
	if err != nil {
		return wrap(c.r.name, err)
	}
	s := &requestSender{stream: stream, r: c.r,
		name: digest.CompressedWriteResourceName(c.r.instance, uuid.NewString(), compression.Name(comp), d)}
	if err := s.compress(r, d); err != nil {
		return err
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return wrap(c.r.name, err)
	}
	// REAPI: the compressed bytes received, or -1 when the remote had the
	// blob; servers that answer the blob's size are taken at their word
	// too (the remote verified the blob either way).
	if cs := resp.GetCommittedSize(); cs != s.off && cs != -1 && cs != d.Size {
		return wrap(c.r.name, status.Errorf(codes.Internal, "blob %s: the remote committed %d of %d compressed bytes", d, cs, s.off))
	}
	return nil
}

// requestSender sends a compressed upload as WriteRequests at offsets
// counting the compressed bytes sent; the resource name goes with the
// first, finish_write with the last.
type requestSender struct {
	stream bspb.ByteStream_WriteClient
	r      *Remote
	name   string
	off    int64
	finish bool
	gone   bool // a Send failed: the status comes from CloseAndRecv
}

// compress reads d's bytes from r, verifying them as write does, and
// sends them compressed, the last request with finish_write.
func (s *requestSender) compress(r io.Reader, d digest.Digest) error {
	out := compression.NewChunker(writeChunk, s.send)
	w := compression.NewWriter(out)
	h := d.NewHasher()
	buf := make([]byte, min(writeChunk, d.Size))
	for off := int64(0); off < d.Size; {
		n := min(int64(len(buf)), d.Size-off)
		if err := readChunk(r, buf[:n], h, d, off, off+n == d.Size); err != nil {
			w.Close()
			return err
		}
		if _, err := w.Write(buf[:n]); err != nil {
			w.Close()
			return s.result(err)
		}
		off += n
	}
	if err := w.Close(); err != nil {
		return s.result(err)
	}
	s.finish = true
	before := s.off
	if err := out.Flush(); err != nil || s.off > before {
		return s.result(err)
	}
	// Nothing was left to flush (the stream ended on a full request):
	// finish_write goes in a request of its own.
	return s.result(s.send(nil))
}

// errSendFailed stops the encoder once the remote ended the stream.
var errSendFailed = status.Error(codes.Aborted, "the remote ended the write stream")

// send sends one request of compressed bytes.
func (s *requestSender) send(b []byte) error {
	if s.gone {
		return errSendFailed
	}
	req := &bspb.WriteRequest{WriteOffset: s.off, Data: b, FinishWrite: s.finish}
	if s.off == 0 {
		req.ResourceName = s.name
	}
	if err := s.stream.Send(req); err != nil {
		s.gone = true // io.EOF may mean the remote has the blob
		return errSendFailed
	}
	s.r.metrics.sent.Add(float64(len(b)))
	s.off += int64(len(b))
	return nil
}

// result is nil for a send that failed (CloseAndRecv has the remote's
// answer, which may be that it has the blob) and err otherwise.
func (s *requestSender) result(err error) error {
	if err == errSendFailed {
		return nil
	}
	return err
}
