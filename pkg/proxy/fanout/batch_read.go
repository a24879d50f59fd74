package fanout

import (
	"context"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// verifyParallelism bounds the blobs of one batch fetch verified at once.
const verifyParallelism = 32

// GetBytes implements store.BytesGetter: GetMany for one digest, so a
// local hit costs one local GetBytes and a miss is fetched like any
// batched miss. For blobs of bounded size only.
func (c *fanoutCAS) GetBytes(ctx context.Context, d digest.Digest) ([]byte, error) {
	r := c.GetMany(ctx, []digest.Digest{d})[0]
	return r.Data, r.Err
}

// GetMany implements store.BatchGetter, for blobs of bounded total size
// (BatchReadBlobs). Local hits are served from local; the misses go to
// the first remote in one batch, what it lacked to the second, and so
// on. Each blob is verified (a bad one is counted, logged and asked of
// the next remote) and returned at once; it is stored locally in the
// background (see fillQueue), and served from memory until then. A miss
// that another read is fetching already waits for that fetch and takes
// its bytes, and reads that come while this batch fetches wait for it.
// Each entry's error is labelled like Get's.
func (c *fanoutCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := c.localOrFilling(ctx, ds)
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
		c.metrics.localHit()
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
		c.flights.finish(ds[i], claimed[ds[i]], got[k].Data, got[k].Err)
		if status.Code(got[k].Err) == codes.NotFound {
			c.metrics.miss()
		}
	}
}

// afterFlight waits for another read's fetch of d and takes its bytes
// (a batch fetch's) or reads d from local (a Get's); if that fetch failed
// with anything but NOT_FOUND, d is fetched anew.
func (c *fanoutCAS) afterFlight(ctx context.Context, d digest.Digest, fl *flight) store.BlobResult {
	err := c.flights.wait(ctx, d, fl)
	if err == nil && fl.data != nil {
		return store.BlobResult{Data: fl.data}
	}
	if err != nil && ctx.Err() == nil && status.Code(err) != codes.NotFound {
		err = c.flights.do(ctx, d, func(fctx context.Context) error { return c.fetch(fctx, d, nil) })
	}
	if err != nil {
		return store.BlobResult{Err: c.missed(err)}
	}
	r := c.localOrFilling(ctx, []digest.Digest{d})[0]
	r.Err = labelLocal(r.Err)
	return r
}

// fetchMany reads ds (distinct, all claimed by the caller) from the
// remotes in order, each asked in one call about what the ones before it
// did not serve. It re-checks local first: a fetch that ended just before
// the claims may have stored some.
func (c *fanoutCAS) fetchMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := c.localOrFilling(ctx, ds)
	var pending []int
	for i := range ds {
		if status.Code(out[i].Err) == codes.NotFound {
			pending = append(pending, i)
		} else {
			out[i].Err = labelLocal(out[i].Err)
		}
	}
	reasons := make([][]string, len(ds))
	for i, t := range c.remotes {
		if len(pending) == 0 || ctx.Err() != nil {
			break
		}
		pending = c.fetchManyFrom(ctx, i, t, ds, pending, out, reasons)
	}
	gone := callerGone(ctx)
	for _, i := range pending {
		out[i].Err = gone
		if gone == nil {
			out[i].Err = foundNowhere(blobName(ds[i]), reasons[i])
		}
	}
	return out
}

// fetchManyFrom asks the i-th remote for ds[j], j in pending, keeps what
// it serves and returns the indexes still to be found; each one's reason
// is added to reasons.
func (c *fanoutCAS) fetchManyFrom(ctx context.Context, i int, t Tier, ds []digest.Digest, pending []int, out []store.BlobResult, reasons [][]string) []int {
	name := remoteLabel(i, t.Name)
	want := make([]digest.Digest, len(pending))
	for k, j := range pending {
		want[k] = ds[j]
	}
	rs := store.GetMany(ctx, t.CAS, want)
	if len(rs) != len(want) {
		rs = failAll(len(want), status.Errorf(codes.Internal, "GetMany answered %d results for %d digests", len(rs), len(want)))
	}
	errs := c.keepMany(ctx, name, t, want, rs)
	var still []int
	for k, j := range pending {
		if err := errs[k].err; err != nil {
			reasons[j] = append(reasons[j], reason(err))
			still = append(still, j)
			continue
		}
		out[j].Data, out[j].Err = errs[k].data, nil
	}
	return still
}

// storeResult is the outcome of keeping one blob a remote served.
type storeResult struct {
	data []byte
	err  error
}

// keepMany verifies the blobs that rs (the answer of the remote called
// name for ds) holds, verifyParallelism at once, and has the good ones
// stored locally. An entry's error is the remote's (labelled; bad data
// counted).
func (c *fanoutCAS) keepMany(ctx context.Context, name string, t Tier, ds []digest.Digest, rs []store.BlobResult) []storeResult {
	out := make([]storeResult, len(ds))
	var g errgroup.Group
	g.SetLimit(verifyParallelism)
	for k, r := range rs {
		if r.Err != nil {
			out[k].err = c.remoteReadFailed(name, t, ds[k], r.Err)
			continue
		}
		g.Go(func() error {
			out[k] = c.keep(ctx, name, t, ds[k], r.Data)
			return nil
		})
	}
	_ = g.Wait() // entries carry their own errors
	return out
}

// keep verifies one blob a remote served, before any client sees it (a
// tier need not verify), and hands it to the fill queue. OnRemoteHit
// fires once local has stored it.
func (c *fanoutCAS) keep(ctx context.Context, name string, t Tier, d digest.Digest, data []byte) storeResult {
	if got := digest.OfBytes(data); got != d {
		return storeResult{err: c.badData(name, t, d, status.Errorf(codes.InvalidArgument, "bytes hash to %s", got))}
	}
	if data == nil {
		data = []byte{} // non-nil: a flight's data tells its waiters they have the blob
	}
	c.metrics.remoteHit(t.Name)
	c.fills.store(ctx, d, data, func() {
		if c.opts.OnRemoteHit != nil {
			c.opts.OnRemoteHit(d, t)
		}
	})
	return storeResult{data: data}
}

// failAll is n results that all fail with err.
func failAll(n int, err error) []store.BlobResult {
	out := make([]store.BlobResult, n)
	for i := range out {
		out[i].Err = err
	}
	return out
}
