package grpcservers

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec readCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// readBuffers lends the chunkSize buffers ByteStream Read sends from and
// bounds the bytes they hold in total. A buffer counts from the moment it
// is lent until gRPC has written it to the connection, so a client that
// stops reading holds at most two (one queued behind its flow-control
// window, one in a Send that waits for room); past the limit, readers
// wait for a buffer instead of allocating one. Safe for concurrent use.
type readBuffers struct {
	sem     *semaphore.Weighted
	pool    sync.Pool        // *[]byte of chunkSize
	held    prometheus.Gauge // bytes lent
	waiting prometheus.Gauge // callers of get waiting for room
}

func newReadBuffers(limit int64, m *metrics) *readBuffers {
	return &readBuffers{sem: semaphore.NewWeighted(max(limit, chunkSize)),
		held: m.readBuffered, waiting: m.readWaiting,
		pool: sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}}
}

// get waits for room under the limit and returns a buffer of n <=
// chunkSize bytes for the caller to fill and then lend.
func (rb *readBuffers) get(ctx context.Context, n int64) (*[]byte, error) {
	if !rb.sem.TryAcquire(chunkSize) {
		rb.waiting.Inc()
		err := rb.sem.Acquire(ctx, chunkSize)
		rb.waiting.Dec()
		if err != nil {
			return nil, status.FromContextError(err).Err()
		}
	}
	rb.held.Add(chunkSize)
	bp := rb.pool.Get().(*[]byte)
	*bp = (*bp)[:n]
	return bp, nil
}

// lend wraps a buffer from get, which goes back (and leaves the limit)
// when the last reference is freed: the caller frees its own once done;
// gRPC takes and frees one while the buffer is queued (see readCodec).
func (rb *readBuffers) lend(bp *[]byte) mem.Buffer {
	return mem.NewBuffer(bp, (*readBufferPool)(rb))
}

// readBufferPool is the mem.BufferPool a lent buffer returns to when its
// last reference is freed.
type readBufferPool readBuffers

func (p *readBufferPool) Get(int) *[]byte { panic("readBufferPool only takes buffers back") }

func (p *readBufferPool) Put(bp *[]byte) {
	*bp = (*bp)[:cap(*bp)]
	p.pool.Put(bp)
	p.held.Sub(chunkSize)
	p.sem.Release(chunkSize)
}

// readChunk is a ReadResponse whose data is a lent buffer. readCodec
// sends the buffer itself, without the copy the proto codec makes; under
// any other codec the embedded ReadResponse (Data aliasing the buffer) is
// marshalled as usual.
type readChunk struct {
	*bspb.ReadResponse
	buf mem.Buffer
}

func newReadChunk(buf mem.Buffer) *readChunk {
	return &readChunk{ReadResponse: &bspb.ReadResponse{Data: buf.ReadOnlyData()}, buf: buf}
}

// readCodec is the proto codec, except that a readChunk is encoded as the
// ReadResponse field header followed by a reference to its buffer: gRPC
// frees the reference once the bytes are on the wire, so the buffer
// counts against the read buffer limit for exactly as long as it exists.
type readCodec struct{ encoding.CodecV2 }

func newReadCodec() readCodec { return readCodec{encoding.GetCodecV2("proto")} }

func (c readCodec) Marshal(v any) (mem.BufferSlice, error) {
	rc, ok := v.(*readChunk)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	n := rc.buf.Len()
	if n == 0 {
		return nil, nil // proto3 omits empty bytes
	}
	hdr := protowire.AppendTag(nil, 10, protowire.BytesType) // ReadResponse.data
	hdr = protowire.AppendVarint(hdr, uint64(n))
	rc.buf.Ref()
	return mem.BufferSlice{mem.SliceBuffer(hdr), rc.buf}, nil
}

// sendLent lends bp (from get) and sends it as one ReadResponse, which
// holds its place under the limit until gRPC has written it; it returns
// the bytes sent.
func (rb *readBuffers) sendLent(stream bspb.ByteStream_ReadServer, bp *[]byte) (int, error) {
	buf := rb.lend(bp)
	err := stream.SendMsg(newReadChunk(buf))
	n := buf.Len()
	buf.Free()
	return n, err
}

// chunkWriter frames a stream written in pieces of any size (a zstd
// encoder's output) into chunkSize ReadResponses sent from buffers of
// rb, filled in place: the writer waits for room under the limit when a
// chunk's first byte arrives, and the chunk counts until gRPC has written
// it, as for identity reads. Flush sends a partial chunk; Close gives back
// one never sent. Not safe for concurrent use.
type chunkWriter struct {
	rb     *readBuffers
	stream bspb.ByteStream_ReadServer
	sent   prometheus.Counter
	bp     *[]byte // the chunk being filled, or nil
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.bp == nil {
			bp, err := w.rb.get(w.stream.Context(), chunkSize)
			if err != nil {
				return n - len(p), err
			}
			w.bp, *bp = bp, (*bp)[:0]
		}
		b := *w.bp
		k := copy(b[len(b):cap(b)], p)
		*w.bp, p = b[:len(b)+k], p[k:]
		if len(*w.bp) == cap(*w.bp) {
			if err := w.Flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// Flush sends the chunk being filled, if any.
func (w *chunkWriter) Flush() error {
	if w.bp == nil {
		return nil
	}
	bp := w.bp
	w.bp = nil
	n, err := w.rb.sendLent(w.stream, bp)
	if err == nil {
		w.sent.Add(float64(n))
	}
	return err
}

// Close gives back a chunk that was never sent.
func (w *chunkWriter) Close() {
	if w.bp != nil {
		w.rb.lend(w.bp).Free()
		w.bp = nil
	}
}
