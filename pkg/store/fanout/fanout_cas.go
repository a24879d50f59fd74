package fanout

import (
	"context"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// NewCAS returns the ordered read fan-out over local and remotes (in pull
// order), the model being bb-storage's readfallback:
//
//   - FindMissing asks local, then each remote only about what the tiers
//     before it lacked; a digest is missing only when no tier has it. A
//     remote that fails is skipped (its digests go on to the next one);
//     a local failure is returned.
//   - Get serves local hits directly; a local copy found corrupt while it
//     is read is fetched again from the remotes and the read completed
//     from that (see repairingReader). On a local miss the remotes are
//     tried in order; the first that has the blob streams it into local
//     (which verifies it; bad bytes are counted, logged and the next remote
//     tried). The Get that starts the fetch reads the remote's bytes as
//     they are stored (see tee: the chunk that completes the blob is
//     handed over only once local has verified and stored it, so a bad
//     blob ends in DATA_LOSS and the fetch goes on to the next remote);
//     Gets that join it, and reads at an offset, are served from local
//     once the fetch is over. Concurrent misses of one digest share one
//     fetch. A remote stream that breaks, or stalls for
//     Options.StreamStallDelay, midway is continued from the next tier at
//     the same offset (see resumingStream). A miss everywhere reachable is NOT_FOUND listing each
//     remote's reason; when no remote could answer at all, the error has
//     the failure's own code (see foundNowhere). The caller's
//     cancellation is returned as CANCELED or DEADLINE_EXCEEDED.
//   - GetWith is Get (the fan-out verifies what it serves, whatever the
//     hint).
//   - GetMany, for small blobs: local first, then each remote asked in one batch about
//     what the tiers before it lacked (see batch_read.go).
//   - When local refuses to store a remote's blob because its filesystem
//     is full (store.IsFull), the read is served all the same, verified
//     by the fan-out and not stored (see unstored.go).
//   - Put, PutWith and PutBytes write to local only (with the hint;
//     write-back wraps the fan-out).
//
// The remotes come decorated as the caller wants them read (castd's
// builder, pkg/proxy/build.go, adds a concurrency limit and an existence
// cache per remote); the fan-out adds none. A remote with a later tier behind it
// gets one attempt and Options.FailoverDelay to answer (see failover); the
// last tier's timeouts are the remote client's (the upstream package's
// retries, request and idle timeouts). A remote that is slow to answer,
// by its answer-time average, is hedged with the next one: FindMissing,
// Get and GetMany ask both and take the first copy found (see hedge.go). Safe for concurrent use.
func NewCAS(local store.CAS, remotes []Tier, opts Options) store.CAS {
	opts = opts.withDefaults()
	c := &fanoutCAS{
		local:    local,
		opts:     opts,
		metrics:  newMetrics(opts.Registerer, opts.Instance, KindCAS, opts.Counters),
		flights:  newFlightGroup(),
		failover: newCASFailover(opts.FailoverDelay, len(remotes), opts.Clock),
		fmetrics: newFailoverMetrics(opts.Registerer, opts.Instance),
		refusals: newRefusals(opts),
	}
	c.remotes = append(c.remotes, remotes...)
	return c
}

type fanoutCAS struct {
	local    store.CAS
	remotes  []Tier // a copy of the caller's tiers
	opts     Options
	metrics  *metrics
	flights  *flightGroup
	failover failover
	refusals *refusals
	fmetrics failoverMetrics
}

func (c *fanoutCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	unknown, err := c.local.FindMissing(ctx, ds)
	if err != nil {
		return nil, labelLocal(err)
	}
	unknown = c.findMissingFrom(ctx, 0, unknown)
	if gone := grpcerr.CallerGone(ctx); gone != nil {
		return nil, gone
	}
	return unknown, nil
}

// findMissingFrom asks the tiers from the i-th on about unknown, each
// about what the ones before it lacked, and returns what none has. A tier
// that is slow to answer is hedged (see hedge.go): the tiers after it are
// asked about the same digests, and a digest is missing when neither side
// has it.
func (c *fanoutCAS) findMissingFrom(ctx context.Context, i int, unknown []digest.Digest) []digest.Digest {
	for ; i < len(c.remotes) && len(unknown) > 0 && ctx.Err() == nil; i++ {
		wait, hedge := c.failover.hedgeAfter(i)
		if !hedge {
			unknown = c.askFindMissing(ctx, i, unknown)
			continue
		}
		asked, next := unknown, i+1
		r := race(ctx, wait,
			func(ctx context.Context) []digest.Digest { return c.askFindMissing(ctx, i, asked) },
			func(ctx context.Context) []digest.Digest { return c.findMissingFrom(ctx, next, asked) },
			func(missing []digest.Digest) bool { return len(missing) == 0 }, nil, c.hedged(i))
		r.release()
		switch {
		case !r.secondDone:
			unknown = r.first // answered in time, or had them all
		case !r.firstDone:
			return nil // the later tiers had them all
		default:
			return within(r.first, r.second)
		}
	}
	return unknown
}

// askFindMissing asks the i-th tier about unknown and returns what it
// lacks: all of unknown when it fails (it is skipped). Every tier, the
// last one too, gets a single attempt: "missing" is always a safe answer
// (the client uploads), so no retry of a down remote may hold the client
// that is about to upload.
func (c *fanoutCAS) askFindMissing(ctx context.Context, i int, unknown []digest.Digest) []digest.Digest {
	t := c.remotes[i]
	call := c.failover.begin(ctx, i)
	missing, err := t.CAS.FindMissing(store.WithFallback(call.ctx), unknown)
	inTime := call.answered()
	call.observe(inTime, err)
	err = call.outcome(inTime, err)
	call.release()
	if err != nil {
		if ctx.Err() == nil && !store.IsUnsupportedFunction(err) {
			c.opts.Logger.Warn("fanout: FindMissing skips a failing remote", "err", label(remoteLabel(i, t.Name), err))
		}
		return unknown
	}
	return within(missing, unknown)
}

// within returns the digests of got that were asked about, so that a remote
// cannot add digests to the answer.
func within(got, asked []digest.Digest) []digest.Digest {
	set := digest.NewSet(asked...)
	out := make([]digest.Digest, 0, len(got))
	for _, d := range got {
		if set.Has(d) {
			out = append(out, d)
			delete(set, d)
		}
	}
	return out
}

func (c *fanoutCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, _ store.GetHint) (io.ReadCloser, error) {
	return c.Get(ctx, d, offset)
}

func (c *fanoutCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if offset < 0 || offset > d.Size {
		return nil, status.Errorf(codes.OutOfRange, "offset %d outside blob %s", offset, d)
	}
	rc, err := c.local.Get(ctx, d, offset)
	if status.Code(err) != codes.NotFound {
		if err != nil {
			return nil, labelLocal(err)
		}
		c.metrics.localHit(d.Size - offset)
		return c.repairing(ctx, d, offset, rc), nil
	}
	if offset == 0 && d.Size > 0 {
		return c.getTeeing(ctx, d)
	}
	return c.getFetched(ctx, d, offset, nil)
}

// getTeeing fetches d and, when this Get starts the fetch, streams the
// remote's bytes to the caller while they are stored (see tee). A Get that
// joins a fetch already running waits for it and reads local.
func (c *fanoutCAS) getTeeing(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	t := newTee(d)
	fl, leader := c.flights.join(ctx, d, func(fctx context.Context) error { return c.fetch(fctx, d, t) })
	if !leader {
		return c.getFetched(ctx, d, 0, fl)
	}
	select {
	case <-t.attached:
		return &teeReader{c: c, ctx: ctx, fl: fl, t: t}, nil
	case <-fl.done:
		select {
		case <-t.attached: // as if the case above had been chosen
			return &teeReader{c: c, ctx: ctx, fl: fl, t: t}, nil
		default:
		}
		t.stopClient()
		if fl.err != nil {
			return c.afterRefusal(ctx, d, 0, fl.err)
		}
		return c.readLocal(ctx, d, 0)
	case <-ctx.Done():
		t.stopClient()
		c.flights.leave(d, fl, true)
		return nil, grpcerr.CallerGone(ctx)
	}
}

// getFetched waits for the fetch of d (joined already when fl is not nil)
// and reads it from local at offset.
func (c *fanoutCAS) getFetched(ctx context.Context, d digest.Digest, offset int64, fl *flight) (io.ReadCloser, error) {
	fetch := func(fctx context.Context) error { return c.fetch(fctx, d, nil) }
	var err error
	if fl != nil {
		err = c.flights.wait(ctx, d, fl)
	}
	if fl == nil || (err != nil && !isRefused(err) && ctx.Err() == nil && status.Code(err) != codes.NotFound) {
		err = c.flights.do(ctx, d, fetch)
	}
	if err != nil {
		return c.afterRefusal(ctx, d, offset, err)
	}
	return c.readLocal(ctx, d, offset)
}

// missed counts a fetch that found d nowhere and passes err on.
func (c *fanoutCAS) missed(err error) error {
	if status.Code(err) == codes.NotFound {
		c.metrics.miss()
	}
	return err
}

func (c *fanoutCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return labelLocal(c.local.Put(ctx, d, r))
}

func (c *fanoutCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	return labelLocal(c.local.PutWith(ctx, d, r, hint))
}

func (c *fanoutCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	return labelLocal(c.local.PutBytes(ctx, d, data, hint))
}
