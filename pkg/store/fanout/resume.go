package fanout

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// resumingStream is the remote stream a fetch stores: d read from tier at,
// continued at the same offset from the next tier that serves it when that
// stream fails or stalls midway (ByteStream reads take an offset), so that
// a remote that breaks in the middle of a blob costs neither the client's
// read nor the bytes already received. The local Put hashes the whole
// spliced stream and stores nothing that does not match d, so a bad splice
// ends in DATA_LOSS like any bad data.
//
// A stream from a tier with a later one behind it must make progress: a
// Read that waits longer than stall is cut as stalled (store.ErrStalled,
// which the remote's breaker counts). The last tier's stream is bounded by
// the remote client's own idle timeout. Not safe for concurrent use.
type resumingStream struct {
	c        *fanoutCAS
	ctx      context.Context
	d        digest.Digest
	stall    time.Duration
	at       int   // the tier being read
	next     int   // the first tier not asked yet
	passed   []int // tiers a hedge did not wait for, to continue from last
	call     *Call
	rc       io.ReadCloser
	pos      int64   // bytes received
	resumed  []int64 // offsets at which the stream moved to another tier
	failures []error // labelled failures of the tiers given up on, in order
	err      error   // sticky
	errAt    int     // the index of err in failures
}

// openResuming opens d at offset 0 from the i-th tier, hedged with the
// next one when it is slow to answer (see hedge.go). On failure it returns
// a nil stream; either way, next is the first tier not asked yet and
// failures are the tiers' labelled failures so far.
func (c *fanoutCAS) openResuming(ctx context.Context, i int, d digest.Digest) (s *resumingStream, next int, failures []error) {
	stream := func(at, next int, o opened, release func()) *resumingStream {
		o.call.also = release
		return &resumingStream{c: c, ctx: ctx, d: d, stall: c.opts.StreamStallDelay, at: at, next: next, call: o.call, rc: o.rc, failures: failures}
	}
	wait, hedge := c.failover.hedgeAfter(i)
	if !hedge {
		o := c.openOpened(ctx, i, d)
		if o.err != nil {
			return nil, i + 1, []error{o.err}
		}
		return stream(i, i+1, o, nil), i + 1, nil
	}
	r := race(ctx, wait,
		func(ctx context.Context) opened { return c.openOpened(ctx, i, d) },
		func(ctx context.Context) opened { return c.openOpened(ctx, i+1, d) },
		func(o opened) bool { return o.err == nil }, opened.drop, c.hedged(i))
	next = i + 1
	if r.secondDone {
		next = i + 2
	}
	for _, o := range []struct {
		done bool
		o    opened
	}{{r.firstDone, r.first}, {r.secondDone, r.second}} {
		if o.done && o.o.err != nil {
			failures = append(failures, o.o.err)
		}
	}
	switch {
	case r.firstDone && r.first.err == nil:
		if r.secondDone && r.second.err == nil {
			r.second.drop() // both answered: pull order decides
		}
		return stream(i, next, r.first, r.release), next, failures
	case r.secondDone && r.second.err == nil:
		s := stream(i+1, next, r.second, r.release)
		if !r.firstDone {
			s.passed = []int{i} // it may still have d, should the next break
		}
		return s, next, failures
	}
	r.release()
	return nil, next, failures
}

// opened is the outcome of opening a tier's stream.
type opened struct {
	rc   io.ReadCloser
	call *Call
	err  error
}

// drop closes a stream that is not read.
func (o opened) drop() {
	if o.err == nil {
		o.rc.Close()
		o.call.release()
	}
}

func (c *fanoutCAS) openOpened(ctx context.Context, i int, d digest.Digest) opened {
	rc, call, err := c.openTier(ctx, i, d, 0)
	return opened{rc, call, err}
}

// openTier opens d at offset from the i-th tier under failover: unless it
// is the last tier, it must deliver its first bytes within the failover
// delay. The consumer verifies: the local Put hashes every byte of the
// whole blob (a remote client cannot hash a suffix anyway). The caller
// releases call once done with rc.
func (c *fanoutCAS) openTier(ctx context.Context, i int, d digest.Digest, offset int64) (io.ReadCloser, *Call, error) {
	t := c.remotes[i]
	call := c.failover.begin(ctx, i)
	rc, err := t.CAS.GetWith(call.ctx, d, offset, store.GetHint{ConsumerVerifies: true})
	inTime := call.answered()
	call.observe(inTime, err)
	if err == nil && !inTime {
		// Opened just as the delay ran out: its context is cancelled.
		rc.Close()
		err = call.stalled()
	}
	if err = call.outcome(inTime, err); err != nil {
		call.release()
		return nil, nil, label(remoteLabel(i, t.Name), err)
	}
	return rc, call, nil
}

func (s *resumingStream) Read(p []byte) (int, error) {
	for s.err == nil {
		n, err := s.readTier(p)
		s.pos += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		failure := s.tierError(err)
		s.failures = append(s.failures, failure)
		at := len(s.failures) - 1
		if !s.resume() {
			s.err, s.errAt = failure, at
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, s.err
}

// readTier reads from the current tier, cutting it off as stalled when it
// has a later tier behind it and delivers nothing for s.stall.
func (s *resumingStream) readTier(p []byte) (int, error) {
	if s.at == len(s.c.remotes)-1 {
		return s.rc.Read(p)
	}
	call := s.call
	timer := time.AfterFunc(s.stall, func() { call.cancel(store.ErrStalled) })
	n, err := s.rc.Read(p)
	timer.Stop()
	return n, err
}

// tierError labels err of the current tier; a cancellation the stall
// timer caused becomes DEADLINE_EXCEEDED saying so.
func (s *resumingStream) tierError(err error) error {
	t := s.c.remotes[s.at]
	if store.Stalled(s.call.ctx) && s.ctx.Err() == nil {
		err = status.Errorf(codes.DeadlineExceeded, "stream made no progress for %v after %d bytes; the next tier was asked", s.stall, s.pos)
	}
	return label(remoteLabel(s.at, t.Name), err)
}

// resume closes the current tier's stream and opens the next tier that
// serves d at the current offset; false when none does (or the caller has
// gone).
func (s *resumingStream) resume() bool {
	s.closeTier()
	for s.ctx.Err() == nil {
		j, ok := s.candidate()
		if !ok {
			return false
		}
		rc, call, err := s.c.openTier(s.ctx, j, s.d, s.pos)
		if err != nil {
			s.failures = append(s.failures, err)
			continue
		}
		s.c.opts.Logger.Warn("fanout: a remote stream broke midway; resumed from the next tier",
			"digest", s.d.String(), "offset", s.pos, "err", s.failures[len(s.failures)-1], "from", remoteLabel(j, s.c.remotes[j].Name))
		s.c.fmetrics.resumed.WithLabelValues(s.c.fmetrics.instance, s.c.remotes[s.at].Name).Inc()
		s.at, s.rc, s.call = j, rc, call
		s.resumed = append(s.resumed, s.pos)
		return true
	}
	return false
}

// candidate is the next tier to continue from: the later tiers in pull
// order, then those a hedge passed over (asked, but not waited for).
func (s *resumingStream) candidate() (int, bool) {
	switch {
	case s.next < len(s.c.remotes):
		s.next++
		return s.next - 1, true
	case len(s.passed) > 0:
		j := s.passed[0]
		s.passed = s.passed[1:]
		return j, true
	}
	return 0, false
}

func (s *resumingStream) closeTier() {
	if s.rc != nil {
		s.rc.Close()
		s.call.release()
		s.rc = nil
	}
}

// Close ends the current tier's stream.
func (s *resumingStream) Close() error {
	s.closeTier()
	return nil
}

// tier is the tier that delivered the last bytes, and its label; a stream
// resumed midway names where it came from too, since a bad splice cannot
// be blamed on one remote.
func (s *resumingStream) tier() (string, Tier) {
	t := s.c.remotes[s.at]
	name := remoteLabel(s.at, t.Name)
	if len(s.resumed) > 0 {
		name = fmt.Sprintf("%s (resumed at byte %d after %s)", name, s.resumed[len(s.resumed)-1], reason(s.failures[0]))
	}
	return name, t
}

// failuresWith is the remotes' failures once the stream was stored with
// outcome err: a failure that ended the stream is among them already (err
// may restate it, e.g. as bad data); any other is added.
func (s *resumingStream) failuresWith(err error) []error {
	switch {
	case err == nil:
		return nil
	case s.err != nil:
		out := slices.Clone(s.failures)
		out[s.errAt] = err
		return out
	}
	return append(s.failures, err)
}
