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
// goroutine; the client side is the pipe reader, handed out by Get once
// the first byte is on its way (attached). Until then a failing remote
// costs the client nothing: the next remote feeds the same tee, and if
// none can, Get returns the fetch's error. Once bytes have gone out, a
// failure ends the client's read with the error and the fetch goes on to
// the next remote without it.
type tee struct {
	d        digest.Digest
	pr       *io.PipeReader
	pw       *io.PipeWriter
	attached chan struct{} // closed before the first byte goes to the client
	isAttach bool          // fetch side only
	ended    bool          // fetch side only: pw is closed
}

func newTee(d digest.Digest) *tee {
	pr, pw := io.Pipe()
	return &tee{d: d, pr: pr, pw: pw, attached: make(chan struct{})}
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

// forward gives b to the client unless it has gone; it blocks until the
// client has read b.
func (s *teeSource) forward(b []byte) {
	if !s.client || len(b) == 0 {
		return
	}
	if !s.t.isAttach {
		s.t.isAttach = true
		close(s.t.attached)
	}
	if _, err := s.t.pw.Write(b); err != nil {
		s.client = false // the client closed its reader; keep storing
		return
	}
	s.sent += int64(len(b))
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
	if err != nil {
		s.t.pw.CloseWithError(err)
		return
	}
	s.t.pw.Close()
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
	n     int64 // bytes read
	ended bool  // a Read returned an error (EOF included)
	once  sync.Once
}

func (r *teeReader) Read(p []byte) (int, error) {
	n, err := r.t.pr.Read(p)
	r.n += int64(n)
	if err != nil {
		r.ended = true
	}
	return n, err
}

// Close stops reading. A client that had the whole blob waits until the
// fetch is over (the local copy is then committed, so a FindMissing that
// follows sees it); one whose read ended in an error leaves the fetch to
// go on with the next remote; one that stopped early gives up its place in
// the flight like a waiter whose context ended (the last one cancels the
// fetch). It never fails.
func (r *teeReader) Close() error {
	r.once.Do(func() {
		r.t.pr.Close()
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
