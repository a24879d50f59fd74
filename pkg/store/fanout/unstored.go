package fanout

import (
	"context"
	"errors"
	"hash"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/internal/promreg"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// A cold read normally stores the remote's bytes locally, and the local
// Put is what verifies them. When the local store refuses to store
// because its filesystem is full, or it opened read-only on a full one
// (store.IsFull), the read is still served: the fan-out hashes the
// remote's bytes itself and hands them over without storing them. A
// stream's last bytes go out only once the whole blob matched (DATA_LOSS
// otherwise), like the tee's; a batch entry is hashed before it is
// returned. The refusal is counted and logged (at most once per
// refusedLogEvery), never returned to the client, with one exception: a
// write that fails for lack of space after the local store had begun to
// read a teed stream (ENOSPC in the middle of a blob; the free-space
// check refuses before reading) ends that read with the store's error
// when bytes had gone to the client already, as the fan-out did not hash
// them. The next read is served unstored.
//
// The read that started the fetch is served from the stream local
// refused; reads that joined the fetch, or read at an offset, each open
// their own remote stream (readThrough): nothing is shared through local.

// refusedLogEvery is the least time between two log lines about the local
// store refusing to store remote blobs: a full disk may refuse every cold
// read.
const refusedLogEvery = time.Minute

// refusedError is the local store's refusal to store a fetched blob for
// lack of space, labelled: it ends the fetch (the next remote would be
// refused too) and tells the reads waiting for the fetch to read a remote
// themselves (readThrough).
type refusedError struct{ s *status.Status }

func (e *refusedError) Error() string { return e.s.Err().Error() }

// GRPCStatus keeps the store's code.
func (e *refusedError) GRPCStatus() *status.Status { return e.s }

// isRefused reports whether err is (or wraps) a refusedError.
func isRefused(err error) bool {
	var r *refusedError
	return errors.As(err, &r)
}

// refusals counts and logs the local store's refusals to store remote
// blobs. Safe for concurrent use.
type refusals struct {
	count prometheus.Counter
	clock clock.Clock
	log   *slog.Logger
	mu    sync.Mutex
	next  time.Time // no log line before this
	since uint64    // refusals since the last log line
}

func newRefusals(opts Options) *refusals {
	return &refusals{
		count: promreg.Register(opts.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "castd_fanout_unstored_total",
			Help: "Blobs read from a remote that the local store refused to store (filesystem full, or read-only after a start on a full one); they were verified and served without a local copy.",
		})),
		clock: opts.Clock,
		log:   opts.Logger,
	}
}

// refused counts the local store's refusal err to store d, read from the
// remote called name, and logs it unless it logged one within
// refusedLogEvery. It returns the labelled refusal.
func (c *fanoutCAS) refused(name string, d digest.Digest, err error) error {
	r := c.refusals
	r.count.Inc()
	r.mu.Lock()
	r.since++
	now, n := r.clock.Now(), r.since
	logIt := !now.Before(r.next)
	if logIt {
		r.next, r.since = now.Add(refusedLogEvery), 0
	}
	r.mu.Unlock()
	if logIt {
		r.log.Warn("fanout: the local store refuses to store blobs read from remotes; serving them verified but unstored",
			"err", err, "remote", name, "digest", d.String(), "refused_since_last_report", n)
	}
	return &refusedError{grpcerr.Of(labelLocal(err))}
}

// serveUnstored verifies the bytes a remote served in a batch, which the
// local store refused to store, and reports whether they may be returned;
// the error of bad bytes is counted as bad data.
func (c *fanoutCAS) serveUnstored(name string, t Tier, d digest.Digest, r store.BlobResult) error {
	if !r.Verified {
		if got := digest.OfBytesIn(d.Func, r.Data); got != d {
			return c.badData(name, t, d, status.Errorf(codes.InvalidArgument, "bytes hash to %s", got))
		}
	}
	c.metrics.remoteHit(t.Name, d.Size)
	return nil
}

// drainUnstored reads the rest of a teed remote stream of d (nothing of
// which the local store took) through the fan-out's own verification, so
// that the tee hands the client the held-back end only if the blob
// matched. nil means verified.
func (c *fanoutCAS) drainUnstored(name string, t Tier, d digest.Digest, src io.Reader) error {
	v := c.verifying(name, t, d, src, 0)
	if _, err := io.Copy(io.Discard, v); err != nil {
		return err
	}
	c.metrics.remoteHit(t.Name, d.Size)
	return nil
}

// readThrough serves d from offset straight from the first remote that
// opens it, verified by the fan-out and stored nowhere: the read of a
// blob the local store refuses to store. Remotes are tried in pull order
// like a fetch, and like the tee's a stream that fails before its first
// bytes are handed out (a small blob found bad, say) costs the client
// nothing: the next remote is asked. After that, a failure ends the read.
func (c *fanoutCAS) readThrough(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	var failures []error
	for i, t := range c.remotes {
		r, err := c.readThroughFrom(ctx, i, t, d, offset)
		if err == nil {
			return r, nil
		}
		if gone := grpcerr.CallerGone(ctx); gone != nil {
			return nil, gone
		}
		failures = append(failures, err)
	}
	return nil, c.missed(foundNowhere(blobName(d), failures))
}

// throughFirstRead bounds the bytes readThrough reads from a remote before
// it hands the stream over.
const throughFirstRead = 64 << 10

// readThroughFrom opens d on the i-th remote and reads its first bytes
// after offset (all of a small blob, verified). The error is labelled.
func (c *fanoutCAS) readThroughFrom(ctx context.Context, i int, t Tier, d digest.Digest, offset int64) (io.ReadCloser, error) {
	name := remoteLabel(i, t.Name)
	call := c.failover.begin(ctx, i)
	// The stream goes through a verifyingReader: the remote client need
	// not hash it too.
	rc, err := t.CAS.GetWith(call.ctx, d, 0, store.GetHint{ConsumerVerifies: true})
	inTime := call.answered()
	if err == nil && !inTime {
		rc.Close()
		err = call.stalled()
	}
	if err = call.outcome(inTime, err); err != nil {
		call.release()
		return nil, label(name, err)
	}
	r := &throughReader{v: c.verifying(name, t, d, rc, offset), rc: rc, call: call}
	buf := make([]byte, max(1, min(throughFirstRead, d.Size-offset)))
	n, err := r.v.Read(buf)
	if err != nil && err != io.EOF {
		r.Close()
		return nil, err
	}
	r.first = buf[:n]
	c.metrics.remoteHit(t.Name, d.Size-offset)
	return r, nil
}

// throughReader is readThrough's stream: the first bytes read ahead, then
// the rest of the verified remote stream. Close ends the remote call.
type throughReader struct {
	v     *verifyingReader
	first []byte
	rc    io.ReadCloser
	call  *Call
	once  sync.Once
}

func (r *throughReader) Read(p []byte) (int, error) {
	if len(r.first) > 0 {
		n := copy(p, r.first)
		r.first = r.first[n:]
		return n, nil
	}
	return r.v.Read(p)
}

func (r *throughReader) Close() error {
	r.once.Do(func() {
		r.rc.Close()
		r.call.release()
	})
	return nil
}

// verifyingReader passes on a remote's stream of d from an offset on,
// hashing every byte from the start: the Read that completes the blob
// returns its bytes only if the whole hashed to d, so a caller never holds
// all of a blob that does not match. Errors are sticky and labelled with
// the remote; bad bytes are counted. Not safe for concurrent use.
type verifyingReader struct {
	c    *fanoutCAS
	name string
	t    Tier
	d    digest.Digest
	r    io.Reader
	h    hash.Hash
	n    int64 // bytes read from r
	skip int64 // bytes before the offset still to drop
	err  error
}

func (c *fanoutCAS) verifying(name string, t Tier, d digest.Digest, r io.Reader, offset int64) *verifyingReader {
	return &verifyingReader{c: c, name: name, t: t, d: d, r: r, h: d.NewHasher(), skip: offset}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if len(p) == 0 && v.err == nil {
		return 0, nil
	}
	for v.err == nil {
		n, err := v.r.Read(p)
		if v.err = v.check(p[:n], err); v.err != nil && v.err != io.EOF {
			return 0, v.err
		}
		k := int(min(int64(n), v.skip))
		v.skip -= int64(k)
		if n = copy(p, p[k:n]); n > 0 {
			return n, nil // a final io.EOF is returned by the next Read
		}
	}
	return 0, v.err
}

// check hashes b, just read with err, and returns what ends the stream:
// io.EOF after exactly d.Size matching bytes, else a labelled error.
func (v *verifyingReader) check(b []byte, err error) error {
	v.h.Write(b)
	v.n += int64(len(b))
	switch {
	case v.n > v.d.Size:
		return v.bad("more than %d bytes", v.d.Size)
	case v.n == v.d.Size && len(b) > 0:
		if got := digest.HashString(v.h); got != v.d.Hash {
			return v.bad("bytes hash to %s", got)
		}
	case err == io.EOF && v.n < v.d.Size:
		return v.bad("the stream ended after %d bytes", v.n)
	}
	if err != nil && err != io.EOF {
		return v.c.remoteReadFailed(v.name, v.t, v.d, err)
	}
	return err
}

func (v *verifyingReader) bad(format string, args ...any) error {
	return v.c.badData(v.name, v.t, v.d, status.Errorf(codes.InvalidArgument, format, args...))
}

// afterRefusal is the read of d at offset after its fetch failed with
// err: read through the remotes when local refused to store d, else err.
func (c *fanoutCAS) afterRefusal(ctx context.Context, d digest.Digest, offset int64, err error) (io.ReadCloser, error) {
	if isRefused(err) {
		return c.readThrough(ctx, d, offset)
	}
	return nil, c.missed(err)
}

// readLocal reads d at offset from local after a fetch of d succeeded. A
// batch fetch that local refused to store succeeds without a local copy;
// its miss is read through the remotes.
func (c *fanoutCAS) readLocal(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := c.local.Get(ctx, d, offset)
	if status.Code(err) == codes.NotFound {
		return c.readThrough(ctx, d, offset)
	}
	return rc, labelLocal(err)
}
