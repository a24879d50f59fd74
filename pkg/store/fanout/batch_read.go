package fanout

import (
	"context"
	"errors"
	"slices"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// storeParallelism bounds the local PutBytes calls one batch fetch runs at
// once: a small blob's store is mostly a wait for a group commit, so many
// must be in flight to keep the store busy.
const storeParallelism = 32

// GetMany implements store.CAS, for blobs of bounded total size
// (BatchReadBlobs). Local hits are served from local; the misses go to
// the first remote in one batch, what it lacked to the second, and so
// on. Each blob is stored locally (which verifies it; a bad one is
// counted, logged and asked of the next remote) before it is returned.
// A miss that another read is fetching already waits for that fetch
// instead, and reads that come while this batch fetches wait for it.
// Each entry's error is labelled like Get's.
func (c *fanoutCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := c.local.GetMany(ctx, ds)
	first := map[digest.Digest]int{}
	var mine, dups []int
	joined := map[int]*flight{}
	claimed := map[digest.Digest]*flight{}
	for i, d := range ds {
		if status.Code(out[i].Err) != codes.NotFound {
			c.countLocal(&out[i])
			continue
		}
		if _, ok := first[d]; ok {
			dups = append(dups, i)
			continue
		}
		first[d] = i
		if fl, leader := c.flights.claim(d); leader {
			claimed[d] = fl
			mine = append(mine, i)
		} else {
			joined[i] = fl
		}
	}
	c.fetchClaimed(ctx, ds, mine, out, claimed)
	for i, fl := range joined {
		out[i] = c.afterFlight(ctx, ds[i], fl)
	}
	for _, i := range dups {
		out[i] = out[first[ds[i]]]
	}
	return out
}

// countLocal labels a local answer and counts a hit.
func (c *fanoutCAS) countLocal(r *store.BlobResult) {
	if r.Err == nil {
		c.metrics.localHit(int64(len(r.Data)))
		return
	}
	r.Err = labelLocal(r.Err)
}

// fetchClaimed fetches ds[i] for i in mine into out and finishes each
// claimed flight with its outcome.
func (c *fanoutCAS) fetchClaimed(ctx context.Context, ds []digest.Digest, mine []int, out []store.BlobResult, claimed map[digest.Digest]*flight) {
	if len(mine) == 0 {
		return
	}
	want := make([]digest.Digest, len(mine))
	for k, i := range mine {
		want[k] = ds[i]
	}
	got := c.fetchMany(ctx, want)
	for k, i := range mine {
		out[i] = got[k]
		c.flights.finish(ds[i], claimed[ds[i]], got[k].Err)
		if status.Code(got[k].Err) == codes.NotFound {
			c.metrics.miss()
		}
	}
}

// afterFlight waits for another read's fetch of d and reads d from local;
// if that fetch failed with anything but NOT_FOUND, d is fetched anew.
// A fetch that ended without a local copy (local refused to store d, see
// unstored.go) is followed by a batch read of the remotes of d alone,
// served unstored.
func (c *fanoutCAS) afterFlight(ctx context.Context, d digest.Digest, fl *flight) store.BlobResult {
	err := c.flights.wait(ctx, d, fl)
	if err != nil && !isRefused(err) && ctx.Err() == nil && status.Code(err) != codes.NotFound {
		err = c.flights.do(ctx, d, func(fctx context.Context) error { return c.fetch(fctx, d, nil) })
	}
	if isRefused(err) {
		return c.fetchMany(ctx, []digest.Digest{d})[0]
	}
	if err != nil {
		return store.BlobResult{Err: c.missed(err)}
	}
	r := c.local.GetMany(ctx, []digest.Digest{d})[0]
	if status.Code(r.Err) == codes.NotFound {
		return c.fetchMany(ctx, []digest.Digest{d})[0]
	}
	r.Err = labelLocal(r.Err)
	return r
}

// fetchMany reads ds (distinct, usually claimed by the caller: an
// unclaimed digest may be fetched twice at once) from the remotes in order, each asked in one call about what the ones before it
// did not serve. It re-checks local first: a fetch that ended just before
// the claims may have stored some.
func (c *fanoutCAS) fetchMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out, pending := c.recheckLocal(ctx, ds)
	reasons := make([][]error, len(ds))
	for i := 0; i < len(c.remotes) && len(pending) > 0 && ctx.Err() == nil; {
		pending, i = c.fetchManyFrom(ctx, i, ds, pending, out, reasons)
	}
	gone := grpcerr.CallerGone(ctx)
	for _, i := range pending {
		out[i].Err = gone
		if gone == nil {
			out[i].Err = foundNowhere(blobName(ds[i]), reasons[i])
		}
	}
	return out
}

// recheckLocal reads from local the blobs of ds (distinct) that arrived
// since GetMany looked, and returns the indexes of the others. It asks
// FindMissing first: usually none arrived, and a miss answered by
// FindMissing costs no NOT_FOUND error per blob as a read would.
func (c *fanoutCAS) recheckLocal(ctx context.Context, ds []digest.Digest) ([]store.BlobResult, []int) {
	out := make([]store.BlobResult, len(ds))
	missing, err := c.local.FindMissing(ctx, ds)
	if err != nil {
		return store.FailAll(len(ds), labelLocal(err)), nil
	}
	var pending, arrived []int
	if len(missing) == len(ds) {
		pending = make([]int, len(ds))
		for i := range ds {
			pending[i] = i
		}
		return out, pending
	}
	absent := digest.NewSet(missing...)
	for i, d := range ds {
		if absent.Has(d) {
			pending = append(pending, i)
		} else {
			arrived = append(arrived, i)
		}
	}
	return out, c.readArrived(ctx, ds, arrived, out, pending)
}

// readArrived reads ds[i], i in arrived, from local into out and returns
// pending with those that have gone again (evicted meanwhile) added.
func (c *fanoutCAS) readArrived(ctx context.Context, ds []digest.Digest, arrived []int, out []store.BlobResult, pending []int) []int {
	want := make([]digest.Digest, len(arrived))
	for k, i := range arrived {
		want[k] = ds[i]
	}
	for k, r := range c.local.GetMany(ctx, want) {
		i := arrived[k]
		if status.Code(r.Err) == codes.NotFound {
			pending = append(pending, i)
			continue
		}
		out[i] = store.BlobResult{Data: r.Data, Err: labelLocal(r.Err)}
	}
	return pending
}

// fetchManyFrom asks the i-th remote for ds[j], j in pending, stores what
// it serves and returns the indexes still to be found (each one's reason
// added to reasons) and the next tier to ask. A remote slow to answer is
// hedged with the next one (see hedge.go): each blob is then taken from
// the first of the two in pull order that served it.
func (c *fanoutCAS) fetchManyFrom(ctx context.Context, i int, ds []digest.Digest, pending []int, out []store.BlobResult, reasons [][]error) ([]int, int) {
	want := make([]digest.Digest, len(pending))
	for k, j := range pending {
		want[k] = ds[j]
	}
	wait, hedge := c.failover.hedgeAfter(i)
	if !hedge {
		return c.settleMany(ctx, i, ds, pending, c.getManyFrom(ctx, i, want), out, reasons), i + 1
	}
	r := race(ctx, wait,
		func(ctx context.Context) []store.BlobResult { return c.getManyFrom(ctx, i, want) },
		func(ctx context.Context) []store.BlobResult { return c.getManyFrom(ctx, i+1, want) },
		allServed, nil, c.hedged(i))
	r.release()
	if !r.secondDone {
		return c.settleMany(ctx, i, ds, pending, r.first, out, reasons), i + 1
	}
	var first, second, neither []int // positions in pending
	for k := range pending {
		switch {
		case r.firstDone && r.first[k].Err == nil:
			first = append(first, k)
		case r.second[k].Err == nil:
			second = append(second, k)
		default:
			neither = append(neither, k)
		}
	}
	still := c.settleMany(ctx, i, ds, pick(pending, first), pick(r.first, first), out, reasons)
	still = append(still, c.settleMany(ctx, i+1, ds, pick(pending, second), pick(r.second, second), out, reasons)...)
	for _, k := range neither {
		j := pending[k]
		if r.firstDone {
			reasons[j] = append(reasons[j], c.remoteReadFailed(remoteLabel(i, c.remotes[i].Name), c.remotes[i], ds[j], r.first[k].Err))
		}
		reasons[j] = append(reasons[j], c.remoteReadFailed(remoteLabel(i+1, c.remotes[i+1].Name), c.remotes[i+1], ds[j], r.second[k].Err))
		still = append(still, j)
	}
	slices.Sort(still)
	return still, i + 2
}

// allServed reports whether every entry of rs was served.
func allServed(rs []store.BlobResult) bool {
	for _, r := range rs {
		if r.Err != nil {
			return false
		}
	}
	return true
}

// pick returns xs[k] for k in at.
func pick[T any](xs []T, at []int) []T {
	out := make([]T, len(at))
	for n, k := range at {
		out[n] = xs[k]
	}
	return out
}

// settleMany stores what the i-th remote served (rs, its answer for
// ds[j], j in pending) and returns the indexes still to be found; each
// one's reason is added to reasons.
func (c *fanoutCAS) settleMany(ctx context.Context, i int, ds []digest.Digest, pending []int, rs []store.BlobResult, out []store.BlobResult, reasons [][]error) []int {
	t := c.remotes[i]
	want := make([]digest.Digest, len(pending))
	for k, j := range pending {
		want[k] = ds[j]
	}
	errs := c.storeMany(ctx, remoteLabel(i, t.Name), t, want, rs)
	var still []int
	for k, j := range pending {
		var local errLocal
		switch err := errs[k].err; {
		case err == nil:
			out[j].Data, out[j].Err = errs[k].data, nil
		case errors.As(err, &local):
			out[j].Err = local.err
		default:
			reasons[j] = append(reasons[j], err)
			still = append(still, j)
		}
	}
	return still
}

// getManyFrom asks the i-th remote for want in one batch, within the
// failover delay unless it is the last tier: when the delay runs out, the
// entries that failed (cancelled) fail as stalled; those that arrived are
// kept.
func (c *fanoutCAS) getManyFrom(ctx context.Context, i int, want []digest.Digest) []store.BlobResult {
	t := c.remotes[i]
	call := c.failover.begin(ctx, i)
	defer call.release()
	rs := t.CAS.GetMany(call.ctx, want)
	inTime := call.answered()
	if len(rs) != len(want) {
		return store.FailAll(len(want), status.Errorf(codes.Internal, "GetMany answered %d results for %d digests", len(rs), len(want)))
	}
	if !allUnsupported(rs) { // the tier was not asked at all
		call.observe(inTime, firstFailure(rs))
	}
	for k := range rs {
		rs[k].Err = call.outcome(inTime, rs[k].Err)
	}
	return rs
}

// storeResult is the outcome of storing one blob a remote served.
type storeResult struct {
	data []byte
	err  error
}

// storeMany stores in local the blobs that rs (the answer of the remote
// called name for ds) holds, storeParallelism at once. An entry's error is
// the remote's (labelled; bad data counted) or an errLocal.
func (c *fanoutCAS) storeMany(ctx context.Context, name string, t Tier, ds []digest.Digest, rs []store.BlobResult) []storeResult {
	out := make([]storeResult, len(ds))
	var g errgroup.Group
	g.SetLimit(storeParallelism)
	for k, r := range rs {
		if r.Err != nil {
			out[k].err = c.remoteReadFailed(name, t, ds[k], r.Err)
			continue
		}
		g.Go(func() error {
			out[k].err = c.storeBytes(ctx, name, t, ds[k], r)
			out[k].data = r.Data
			return nil
		})
	}
	_ = g.Wait() // entries carry their own errors
	return out
}

// storeBytes stores one blob a remote served. Local verifies it, unless
// the remote's client did already (r.Verified).
func (c *fanoutCAS) storeBytes(ctx context.Context, name string, t Tier, d digest.Digest, r store.BlobResult) error {
	err := c.local.PutBytes(ctx, d, r.Data, store.PutHint{Verified: r.Verified})
	switch {
	case err == nil:
		c.stored(d, t)
		return nil
	case status.Code(err) == codes.InvalidArgument:
		return c.badData(name, t, d, err)
	case disk.IsFull(err):
		c.refused(name, d, err)
		return c.serveUnstored(name, t, d, r)
	}
	return errLocal{labelLocal(err)}
}

// firstFailure is the first error of rs that is not NOT_FOUND, or nil.
func firstFailure(rs []store.BlobResult) error {
	for _, r := range rs {
		if r.Err != nil && status.Code(r.Err) != codes.NotFound {
			return r.Err
		}
	}
	return nil
}

// allUnsupported reports whether every entry of rs is of a digest function
// the tier does not take (store.IsUnsupportedFunction): answered without
// a call.
func allUnsupported(rs []store.BlobResult) bool {
	for _, r := range rs {
		if !store.IsUnsupportedFunction(r.Err) {
			return false
		}
	}
	return len(rs) > 0
}
