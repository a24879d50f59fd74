// Package compression encodes and decodes the blob compressors of REAPI's
// compressed-blobs resources and batch calls (zstd, with
// github.com/klauspost/compress), for the served API (pkg/grpcservers) and
// the remote client (pkg/store/grpcclient). It holds no blob: callers
// verify the decoded bytes against the digest, as they verify identity
// transfers.
//
// Decoding is bounded for bytes a peer sent: a reader yields exactly the
// digest's size and fails when the stream would yield more, so a
// decompression bomb (a tiny frame that declares or produces far more than
// the digest says) costs at most the digest's size plus one zstd window
// (maxWindow), never what the frame declares.
//
// Encoders and decoders are expensive to create (tables of several hundred
// KiB), so they are pooled; every function here is safe for concurrent
// use, each value it returns is for one goroutine.
package compression

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// maxWindow bounds the zstd window a peer's frame may use: the
	// decoder's history buffer. 8 MiB is what zstd's levels up to 19 use
	// (--long needs more, and is refused); Bazel (zstd-jni) streams with
	// 2 MiB at its default level.
	maxWindow = 8 << 20
	// level is castd's encoding level: the fastest, because castd
	// compresses on demand for each read and on 2-core machines CPU, not
	// the link, is the first limit (see BENCHMARKS.md).
	level = zstd.SpeedFastest
)

// Supported lists the compressors castd encodes and decodes besides
// identity (which REAPI requires everywhere and is not listed), in the
// order castd prefers them.
func Supported() []repb.Compressor_Value { return []repb.Compressor_Value{repb.Compressor_ZSTD} }

// IsSupported reports whether c is identity or one of Supported.
func IsSupported(c repb.Compressor_Value) bool {
	return c == repb.Compressor_IDENTITY || c == repb.Compressor_ZSTD
}

// FromName returns the compressor a compressed-blobs resource name calls
// name ("zstd"), or INVALID_ARGUMENT for one castd does not support.
// Identity is not a valid name there: REAPI says such resources name a
// compressor other than identity.
func FromName(name string) (repb.Compressor_Value, error) {
	c, ok := repb.Compressor_Value_value[strings.ToUpper(name)]
	if !ok || name != strings.ToLower(name) || !IsSupported(repb.Compressor_Value(c)) || c == 0 {
		return 0, status.Errorf(codes.InvalidArgument, "resource_name: compressor %q is not supported (supported: zstd)", name)
	}
	return repb.Compressor_Value(c), nil
}

// Name returns c as it appears in a resource name ("zstd").
func Name(c repb.Compressor_Value) string { return strings.ToLower(c.String()) }

// Offers reports whether a remote's capabilities list c among its
// ByteStream compressors (supported_compressors).
func Offers(caps *repb.CacheCapabilities, c repb.Compressor_Value) bool {
	for _, s := range caps.GetSupportedCompressors() {
		if s == c {
			return true
		}
	}
	return false
}

// OffersBatch reports whether a remote's capabilities list c among its
// BatchUpdateBlobs compressors (supported_batch_update_compressors).
func OffersBatch(caps *repb.CacheCapabilities, c repb.Compressor_Value) bool {
	for _, s := range caps.GetSupportedBatchUpdateCompressors() {
		if s == c {
			return true
		}
	}
	return false
}

var (
	encoders = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(level))
		if err != nil {
			panic(err) // the options are constants
		}
		return e
	}}
	decoders = sync.Pool{New: func() any {
		// Concurrency 1 decodes in the calling goroutine (no goroutines to
		// leak from a pooled decoder); the window bounds its memory.
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderMaxMemory(maxWindow))
		if err != nil {
			panic(err)
		}
		return d
	}}
)

// Encode appends the compressed form of src to dst, with compressor c
// (zstd; identity appends src). Cost: one pooled encoder, about
// SpeedFastest's MB/s of CPU.
func Encode(c repb.Compressor_Value, dst, src []byte) []byte {
	if c == repb.Compressor_IDENTITY {
		return append(dst, src...)
	}
	e := encoders.Get().(*zstd.Encoder)
	defer encoders.Put(e)
	return e.EncodeAll(src, dst)
}

// Pays reports whether sending compressed (n bytes) instead of identity
// (size bytes) is worth the receiver's decoding: it must save at least an
// eighth. Incompressible data (most build outputs that are themselves
// compressed archives) goes out as identity.
func Pays(n, size int) bool { return n < size-size/8 }

// Writer compresses what is written to it into w. Close flushes the end of
// the stream and returns the encoder to the pool; it must be called once.
type Writer struct {
	e *zstd.Encoder
}

// NewWriter returns a Writer compressing into w with zstd.
func NewWriter(w io.Writer) *Writer {
	e := encoders.Get().(*zstd.Encoder)
	e.Reset(w)
	return &Writer{e: e}
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) { return w.e.Write(p) }

// ReadFrom compresses r to its end into the stream.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) { return w.e.ReadFrom(r) }

// Close ends the stream (writing its last block) and releases the encoder.
func (w *Writer) Close() error {
	err := w.e.Close()
	w.e.Reset(nil)
	encoders.Put(w.e)
	return err
}

// Reader yields the decoded bytes of a compressed stream: exactly size
// bytes, then io.EOF once the stream has ended there. A stream that is
// corrupt, ends early or decodes to more than size fails its Read with
// the code given to NewReader, having decoded at most size+1 bytes (so a
// bomb is refused after size bytes of output, whatever it declares). Not
// safe for concurrent use; Close returns its decoder to the pool.
type Reader struct {
	d    *zstd.Decoder
	left int64
	size int64
	code codes.Code
	err  error
}

// NewReader decodes r, compressed with c, as a blob of size bytes. code is
// the status code of a bad stream: INVALID_ARGUMENT for a client's upload,
// DATA_LOSS for a remote's answer.
func NewReader(c repb.Compressor_Value, r io.Reader, size int64, code codes.Code) *Reader {
	if c != repb.Compressor_ZSTD {
		return &Reader{left: size, size: size, code: code, err: status.Errorf(codes.InvalidArgument, "compressor %s is not supported", c)}
	}
	d := decoders.Get().(*zstd.Decoder)
	rd := &Reader{d: d, left: size, size: size, code: code}
	if err := d.Reset(r); err != nil {
		rd.err = rd.fail(err)
	}
	return rd
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.left == 0 {
		r.err = r.end()
		return 0, r.err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.d.Read(p)
	r.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF) && r.left > 0:
		r.err = status.Errorf(r.code, "zstd stream ends after %d of %d bytes", r.size-r.left, r.size)
	case err != nil && !errors.Is(err, io.EOF):
		r.err = r.fail(err)
	}
	if n > 0 {
		return n, nil
	}
	return 0, r.err
}

// end checks, after size bytes, that the stream ends there: one more
// decoded byte is a stream longer than the digest says.
func (r *Reader) end() error {
	var one [1]byte
	n, err := r.d.Read(one[:])
	switch {
	case n > 0:
		return status.Errorf(r.code, "zstd stream decodes to more than the digest's %d bytes", r.size)
	case errors.Is(err, io.EOF):
		return io.EOF
	case err == nil:
		return status.Errorf(r.code, "zstd stream does not end after the digest's %d bytes", r.size)
	}
	return r.fail(err)
}

func (r *Reader) fail(err error) error {
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return err // the source's own error (a canceled stream, say)
	}
	return status.Errorf(r.code, "zstd stream: %v", err)
}

// Close releases the decoder; the Reader must not be used after.
func (r *Reader) Close() error {
	if r.d != nil {
		_ = r.d.Reset(nil)
		decoders.Put(r.d)
		r.d = nil
	}
	return nil
}

// Decode decodes data, compressed with c, as a blob of size bytes into a
// new buffer of exactly size bytes (see Reader for the bounds and code).
// Identity data must be size bytes long.
func Decode(c repb.Compressor_Value, data []byte, size int64, code codes.Code) ([]byte, error) {
	if c == repb.Compressor_IDENTITY {
		if int64(len(data)) != size {
			return nil, status.Errorf(code, "%d bytes, but the digest says %d", len(data), size)
		}
		return data, nil
	}
	r := NewReader(c, bytes.NewReader(data), size, code)
	defer r.Close()
	out := make([]byte, size)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, err
	}
	if _, err := r.Read(nil); err != io.EOF {
		return nil, err
	}
	return out, nil
}

// MaxEncodedSize bounds the compressed size of a blob of size bytes as
// castd and any sane encoder produce it (raw blocks of at most 128 KiB
// with a 3-byte header each, a frame header, and slack for a few
// frames): a compressed upload longer than that is refused instead of
// spooled without end.
func MaxEncodedSize(size int64) int64 { return size + size>>10 + 1<<10 }
