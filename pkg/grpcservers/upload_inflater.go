package grpcservers

import (
	"io"
	"sync"
	"sync/atomic"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
)

// inflater decodes a compressed upload into its spool as the chunks
// arrive, so that the spool holds (and verifies, and the store takes in)
// the uncompressed blob, and committed_size counts compressed bytes as
// REAPI says. The decoder pulls its input, so it runs in a goroutine of
// its own that asks for each chunk; write hands it one and returns only
// once the goroutine waits for the next (or has failed), so between
// writes nothing touches the spool and the upload can be suspended,
// resumed by another stream (the decoder's state survives in between),
// or dropped. The goroutine ends at finish or close. Costs one goroutine
// and one pooled decoder (at most its window) per compressed upload in
// progress or waiting to be resumed. write and finish are called by the
// stream holding the upload; close by whoever drops it.
type inflater struct {
	chunks   chan []byte   // the next chunk; closed at finish or close
	parked   chan struct{} // the goroutine waits for a chunk
	done     chan error    // the goroutine's end: nil once size bytes decoded and the stream ended
	received atomic.Int64  // compressed bytes taken
	limit    int64         // compressed bytes accepted at most

	mu     sync.Mutex
	closed bool  // chunks closed
	ended  bool  // done received
	err    error // the goroutine's verdict once ended
}

// newInflater starts decoding c into spool as a blob of size bytes.
func newInflater(c repb.Compressor_Value, spool io.Writer, size int64) *inflater {
	f := &inflater{chunks: make(chan []byte), parked: make(chan struct{}), done: make(chan error, 1),
		limit: compression.MaxEncodedSize(size)}
	go f.run(c, spool, size)
	_ = f.wait()
	return f
}

func (f *inflater) run(c repb.Compressor_Value, spool io.Writer, size int64) {
	r := compression.NewReader(c, &feed{f: f}, size, codes.InvalidArgument)
	_, err := io.CopyBuffer(onlyWriter{spool}, r, make([]byte, 256<<10))
	r.Close()
	f.done <- err
}

// onlyWriter hides a ReadFrom, so that the copy goes through the buffer.
type onlyWriter struct{ io.Writer }

// feed is the decoder's input: the chunks write hands over.
type feed struct {
	f   *inflater
	cur []byte
	eof bool
}

func (fd *feed) Read(p []byte) (int, error) {
	for len(fd.cur) == 0 {
		if fd.eof {
			return 0, io.EOF
		}
		fd.f.parked <- struct{}{}
		b, ok := <-fd.f.chunks
		fd.cur, fd.eof = b, !ok
	}
	n := copy(p, fd.cur)
	fd.cur = fd.cur[n:]
	return n, nil
}

// wait returns once the goroutine waits for a chunk (nil) or has ended
// (its error; a stream that ended with data still to come is an error).
func (f *inflater) wait() error {
	select {
	case <-f.parked:
		return nil
	case err := <-f.done:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ended = true
		if err == nil {
			err = status.Error(codes.InvalidArgument, "data: the zstd stream ended before the upload did")
		}
		f.err = err
		return err
	}
}

// write decodes data, the next compressed bytes of the upload, into the
// spool. A corrupt stream, one that decodes to more than the blob's
// size, or more compressed bytes than a sane encoder makes of it, is
// INVALID_ARGUMENT.
func (f *inflater) write(data []byte) error {
	if f.ended {
		return f.err
	}
	if f.received.Load()+int64(len(data)) > f.limit {
		return status.Errorf(codes.InvalidArgument, "data: more than %d compressed bytes for this blob", f.limit)
	}
	if len(data) == 0 {
		return nil
	}
	f.chunks <- data
	if err := f.wait(); err != nil {
		return err
	}
	f.received.Add(int64(len(data)))
	return nil
}

// finish ends the input and returns the decoder's verdict: nil when the
// stream decoded to exactly the blob's size and ended there.
func (f *inflater) finish() error {
	if f.ended {
		return f.err
	}
	f.closeChunks()
	err := <-f.done
	f.mu.Lock()
	f.ended, f.err = true, err
	f.mu.Unlock()
	return err
}

// close stops the goroutine (if it still runs) and waits for it, so the
// spool can be removed. Safe to call more than once.
func (f *inflater) close() {
	if f.closeChunks() {
		f.mu.Lock()
		ended := f.ended
		f.mu.Unlock()
		if !ended {
			<-f.done
		}
	}
}

// closeChunks closes chunks once and reports whether this call did.
func (f *inflater) closeChunks() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.closed = true
	close(f.chunks)
	return true
}
