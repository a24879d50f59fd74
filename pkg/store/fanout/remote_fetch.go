package fanout

import (
	"context"
	"errors"
	"io"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// errLocal marks a fetch that failed on the local side (the remote was
// fine), which stops the fan-out: the next remote would fail the same way.
type errLocal struct{ err error }

func (e errLocal) Error() string { return e.err.Error() }

// fetch copies d from the first remote that has it into the local store,
// teeing the first remote stream it opens to the client of tee (which may
// be nil). It runs inside the flight for d, so it first re-checks local: a
// fetch that finished just before this one started has already stored d.
func (c *fanoutCAS) fetch(ctx context.Context, d digest.Digest, tee *tee) error {
	missing, err := c.local.FindMissing(ctx, []digest.Digest{d})
	if err != nil {
		return labelLocal(err)
	}
	if !slices.Contains(missing, d) {
		return nil
	}
	_, _, err = walkSteps(ctx, len(c.remotes), blobName(d), Hooks{}, func(ctx context.Context, i int) (struct{}, int, []error, error) {
		next, tried, err := c.fetchFrom(ctx, i, d, tee)
		return struct{}{}, next, tried, err
	})
	return err
}

// fetchFrom streams d from the i-th remote into local, teeing it to the
// client of tee unless the tee has ended; a stream that breaks midway is
// resumed from the next tiers (see resumingStream). It returns the first
// tier not asked yet, the remotes' labelled failures in pull order, and
// nil when d is stored, else the remote's error or an errLocal.
func (c *fanoutCAS) fetchFrom(ctx context.Context, i int, d digest.Digest, tee *tee) (int, []error, error) {
	rs, next, failures := c.openResuming(ctx, i, d)
	if rs == nil {
		return next, failures, failures[len(failures)-1]
	}
	defer rs.Close()
	if !tee.take() {
		err := c.store(ctx, rs.tier, d, rs)
		return rs.next, rs.failuresWith(err), err
	}
	src := tee.source(rs)
	err := c.store(ctx, rs.tier, d, src)
	var local errLocal
	clientErr := err
	if errors.As(err, &local) {
		clientErr = local.err
	}
	if isRefused(clientErr) && src.read == 0 {
		// Local took none of it: the fan-out verifies what the tee hands
		// over; the fetch still ends refused, so that its waiters read
		// through too.
		name, t := rs.tier()
		if clientErr = c.drainUnstored(name, t, d, src); clientErr != nil {
			err = clientErr
		}
	}
	src.end(ctx, clientErr, func(ctx context.Context, offset int64) (io.ReadCloser, error) {
		return c.local.Get(ctx, d, offset)
	})
	return rs.next, rs.failuresWith(err), err
}

// store puts the bytes of r, read from the remote that from names when
// asked (the tier that delivered the last bytes), into local under d and
// tells a remote's failure (labelled) from a local one (errLocal).
func (c *fanoutCAS) store(ctx context.Context, from func() (string, Tier), d digest.Digest, r io.Reader) error {
	src := &errorRecordingReader{r: r}
	// A blob streamed in from a remote is being handed to its reader as it
	// arrives; nothing reads the stored copy soon, so it need not pass
	// through the page cache.
	err := c.local.PutWith(ctx, d, src, store.PutHint{Uncached: true})
	name, t := from()
	switch {
	case err == nil:
		c.stored(d, t)
		return nil
	case src.err != nil && status.Code(src.err) == codes.DataLoss:
		return c.badData(name, t, d, src.err)
	case src.err != nil:
		return src.err // labelled by the stream
	case status.Code(err) == codes.InvalidArgument:
		return c.badData(name, t, d, err)
	case disk.IsFull(err):
		return errLocal{c.refused(name, d, err)}
	}
	return errLocal{labelLocal(err)}
}

// stored accounts for a remote hit now stored locally.
func (c *fanoutCAS) stored(d digest.Digest, t Tier) {
	c.metrics.remoteHit(t.Name, d.Size)
	if c.opts.OnRemoteHit != nil {
		c.opts.OnRemoteHit(d, t)
	}
}

// remoteReadFailed reports a stream that broke; a remote that detected
// corruption itself (DATA_LOSS) counts as bad data.
func (c *fanoutCAS) remoteReadFailed(name string, t Tier, d digest.Digest, err error) error {
	if status.Code(err) == codes.DataLoss {
		return c.badData(name, t, d, err)
	}
	return label(name, err)
}

// badData counts and logs bytes that did not match d; local rejected them.
func (c *fanoutCAS) badData(name string, t Tier, d digest.Digest, err error) error {
	c.metrics.bad(t.Name)
	err = status.Errorf(codes.DataLoss, "%s: served bytes that do not match %s: %s", name, d, grpcerr.Of(err).Message())
	c.opts.Logger.Warn("fanout: rejected bad data from a remote", "remote", t.Name, "digest", d.String(), "err", err)
	return err
}

// errorRecordingReader remembers the first non-EOF error of r, so that a
// failed Put can be blamed on the remote stream rather than the local store.
type errorRecordingReader struct {
	r   io.Reader
	err error
}

func (e *errorRecordingReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
