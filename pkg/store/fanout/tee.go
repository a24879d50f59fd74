package fanout

import (
	"context"
	"io"
	"sync"

	"github.com/castd/castd/pkg/digest"
)

// tee hands the bytes that a fetch streams from a remote into the local
// store to the client whose Get started the fetch, as they arrive, so that
// a cold read does not wait for the whole download. The local Put is the
// verifier: every chunk but the one that completes the blob goes to the
// client at once; that last one is handed over only after Put has
// accepted (hashed and stored) the whole blob. A client therefore never
// holds all of a blob that does not match its digest: its last Read fails
// instead (DATA_LOSS for bad bytes).
//
// The fetch side (take, source, teeSource.end) runs in the flight
// goroutine; the client side is teeReader, handed out by Get once
// the first byte is on its way (attached). Until then a failing remote
// costs the client nothing: the next remote feeds the same tee, and if
// none can, Get returns the fetch's error. A remote stream that breaks or
// stalls midway is continued from the next tier at the same offset (see
// resumingStream), so the client's read goes on; only when no tier can
// continue it, or the spliced blob does not match d, does the failure end
// the client's read, and the fetch goes on to the next remote without it.
type tee struct {
	d        digest.Digest
	ch       chan *[]byte  // chunks for the client, closed by end
	err      error         // the client's final error (nil: EOF); set before ch is closed
	quit     chan struct{} // closed when the client stops reading
	quitOnce sync.Once
	attached chan struct{} // closed before the first byte goes to the client
	isAttach bool          // fetch side only
	ended    bool          // fetch side only: ch is closed
}

// teeBuffer is how many chunks may wait for the client, so that storing
// and sending overlap instead of taking turns; memory is at most this
// many chunks (each one remote Read, typically 1 MiB) per teed read.
const teeBuffer = 4

// teeChunkSize is the capacity of the pooled chunk buffers.
const teeChunkSize = 1 << 20

var teeChunks = sync.Pool{New: func() any { b := make([]byte, teeChunkSize); return &b }}

func newTee(d digest.Digest) *tee {
	return &tee{d: d, ch: make(chan *[]byte, teeBuffer), quit: make(chan struct{}), attached: make(chan struct{})}
}

// stopClient tells the fetch side that nobody reads any more.
func (t *tee) stopClient() { t.quitOnce.Do(func() { close(t.quit) }) }

// close ends the client's stream with err (nil: EOF).
func (t *tee) close(err error) {
	t.err = err
	close(t.ch)
}

// take reports whether the next remote stream is to be teed: t is not nil
// and has not ended.
func (t *tee) take() bool { return t != nil && !t.ended }

// teeSource is the reader the local Put consumes: it passes the remote's
// bytes through and copies each to the client, holding back the chunk
// that completes the blob until end(nil).
type teeSource struct {
	t      *tee
	r      io.Reader
	read   int64  // bytes read from r
	sent   int64  // bytes handed to the client
	last   []byte // held back: the bytes from sent up to the end
	client bool   // the client still reads
}

func (t *tee) source(r io.Reader) *teeSource {
	return &teeSource{t: t, r: r, client: true}
}

func (s *teeSource) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n == 0 {
		return n, err
	}
	s.read += int64(n)
	if s.read >= s.t.d.Size || len(s.last) > 0 {
		s.last = append(s.last, p[:n]...)
		return n, err
	}
	s.forward(p[:n])
	return n, err
}

// forward queues a copy of b for the client unless it has gone; it waits
// only while teeBuffer chunks are queued already.
func (s *teeSource) forward(b []byte) {
	for len(b) > 0 && s.client {
		if !s.t.isAttach {
			s.t.isAttach = true
			close(s.t.attached)
		}
		bp := teeChunks.Get().(*[]byte)
		n := copy(*bp, b)
		*bp = (*bp)[:n]
		select {
		case s.t.ch <- bp:
			s.sent += int64(n)
			b = b[n:]
		case <-s.t.quit:
			s.client = false // the client closed its reader; keep storing
		}
	}
}

// end finishes the client's read after the store ended with err, unless
// err is a failure before any byte went out (then the tee is left for the
// next remote). With err nil the blob is stored and verified: the
// held-back bytes, or (when Put found the blob already stored and stopped
// reading early) the rest read from local, go to the client before EOF.
func (s *teeSource) end(ctx context.Context, err error, local func(ctx context.Context, offset int64) (io.ReadCloser, error)) {
	if err != nil && s.sent == 0 {
		return
	}
	s.t.ended = true
	if err == nil && s.read == s.t.d.Size {
		s.forward(s.last)
	} else if err == nil {
		err = s.restFrom(ctx, local)
	}
	s.t.close(err)
}

// restFrom hands the client what it has not had yet, from local.
func (s *teeSource) restFrom(ctx context.Context, local func(ctx context.Context, offset int64) (io.ReadCloser, error)) error {
	if !s.client {
		return nil
	}
	rc, err := local(ctx, s.sent)
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	for s.client {
		n, err := rc.Read(buf)
		s.forward(buf[:n])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// teeReader is the client's side of a tee, returned by the Get that
// started the fetch. Not safe for concurrent use (like any reader).
type teeReader struct {
	c     *fanoutCAS
	ctx   context.Context
	fl    *flight
	t     *tee
	cur   *[]byte // the chunk being read
	off   int     // read position in cur
	n     int64   // bytes read
	ended bool    // a Read returned an error (EOF included)
	once  sync.Once
}

func (r *teeReader) Read(p []byte) (int, error) {
	if r.cur == nil {
		bp, ok := <-r.t.ch
		if !ok {
			r.ended = true
			if r.t.err != nil {
				return 0, r.t.err
			}
			return 0, io.EOF
		}
		r.cur, r.off = bp, 0
	}
	n := copy(p, (*r.cur)[r.off:])
	r.off += n
	r.n += int64(n)
	if r.off == len(*r.cur) {
		*r.cur = (*r.cur)[:cap(*r.cur)]
		teeChunks.Put(r.cur)
		r.cur = nil
	}
	return n, nil
}

// Close stops reading. A client that had the whole blob waits until the
// fetch is over (the local copy is then committed, so a FindMissing that
// follows sees it); one whose read ended in an error leaves the fetch to
// go on with the next remote; one that stopped early gives up its place in
// the flight like a waiter whose context ended (the last one cancels the
// fetch). It never fails.
func (r *teeReader) Close() error {
	r.once.Do(func() {
		r.t.stopClient()
		complete := r.n == r.t.d.Size
		if complete {
			select {
			case <-r.fl.done:
			case <-r.ctx.Done():
			}
		}
		r.c.flights.leave(r.t.d, r.fl, !complete && !r.ended)
	})
	return nil
}
