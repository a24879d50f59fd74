package fanout_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// offsetLog records the offset of every Get of a tier.
type offsetLog struct {
	store.BasicCAS
	mu      sync.Mutex
	offsets []int64
}

func (l *offsetLog) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	l.mu.Lock()
	l.offsets = append(l.offsets, offset)
	l.mu.Unlock()
	return l.BasicCAS.Get(ctx, d, offset)
}

func (l *offsetLog) got() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.offsets...)
}

// stallingCAS serves base's blobs teeChunk bytes per Read and, after
// stallAfter bytes, holds the next Read until its context ends, noting
// whether it ended as stalled.
type stallingCAS struct {
	store.BasicCAS
	stallAfter int
	stalled    chan bool // one value per stalled stream
}

func (c stallingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := c.BasicCAS.Get(ctx, d, offset)
	if err != nil {
		return nil, err
	}
	return &stallingReader{ReadCloser: rc, c: c, ctx: ctx}, nil
}

type stallingReader struct {
	io.ReadCloser
	c    stallingCAS
	ctx  context.Context
	read int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.read >= r.c.stallAfter {
		<-r.ctx.Done()
		r.c.stalled <- store.Stalled(r.ctx)
		return 0, status.FromContextError(r.ctx.Err()).Err()
	}
	n, err := r.ReadCloser.Read(p[:min(len(p), teeChunk)])
	r.read += n
	return n, err
}

func TestBrokenStreamResumesFromTheNextTier(t *testing.T) {
	const midway = 8 * teeChunk
	stalled := make(chan bool, 1)
	for _, tc := range []struct {
		name, why string
		first     func(store.CAS) store.BasicCAS
	}{
		{"cut midway", "a stream that breaks after bytes went to the client is finished from the next tier at the same offset",
			func(m store.CAS) store.BasicCAS { return chunkyCAS{BasicCAS: m, failAfter: midway} }},
		{"stall midway", "a stream that stops delivering is cut after the stream stall delay (counted as a stall) and finished from the next tier",
			func(m store.CAS) store.BasicCAS {
				return stallingCAS{BasicCAS: m, stallAfter: midway, stalled: stalled}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			d, b, remote := bigBlob(t, 64*teeChunk)
			r2 := &offsetLog{BasicCAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: remote})}
			local := store.NewMemory()
			// Opening never stalls (the failover delay is far off): only the
			// stream stall delay can cut the stalled stream, whenever the
			// machine gets to it.
			reg := prometheus.NewRegistry()
			opts := fanout.Options{FailoverDelay: time.Hour, StreamStallDelay: time.Millisecond, Registerer: reg}
			c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(tc.first(remote))}, {Name: "r2", CAS: store.WithGenericFastPaths(r2)}}, opts)
			got, err := readAll(context.Background(), c, d, 0)
			if err != nil || got != string(b) {
				t.Fatalf("read: %d of %d bytes (exact: %v), %v; want the blob", len(got), len(b), got == string(b), err)
			}
			// r1 yields up to teeChunk bytes a Read and breaks once it has
			// passed midway; the exact blob shows the offset was r1's end.
			if offs := r2.got(); len(offs) != 1 || offs[0] < midway || offs[0] >= midway+teeChunk {
				t.Errorf("r2 Gets at offsets %v; want one at %d..%d (where r1 broke)", offs, midway, midway+teeChunk)
			}
			if stored, err := readAll(context.Background(), local, d, 0); err != nil || stored != string(b) {
				t.Errorf("local copy: %v (correct: %v)", err, stored == string(b))
			}
			if n := metricValue(t, reg, "castd_fanout_resumed_total", "r1"); n != 1 {
				t.Errorf("castd_fanout_resumed_total{remote=r1} = %v; want 1", n)
			}
			if tc.name == "stall midway" && !<-stalled {
				t.Error("r1's stream was not cut as stalled (its breaker would not count it)")
			}
		})
	}
}

func TestBadSpliceIsNotStored(t *testing.T) {
	t.Log("a stream resumed from a tier whose suffix is wrong ends in DATA_LOSS naming both remotes, and nothing is stored")
	d, b, remote := bigBlob(t, 64*teeChunk)
	local := store.NewMemory()
	tiers := []fanout.Tier{
		{Name: "r1", CAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: remote, failAfter: 8 * teeChunk})},
		{Name: "r2", CAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: corruptCAS{remote}})}, // flips the first byte it serves
	}
	c := fanout.NewCAS(local, tiers, fanout.Options{})
	got, err := readAll(context.Background(), c, d, 0)
	if status.Code(err) != codes.DataLoss || len(got) >= len(b) {
		t.Fatalf("read: %d of %d bytes, %v; want fewer bytes and DATA_LOSS", len(got), len(b), err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "upstream[1] r1") || !strings.Contains(msg, "upstream[2] r2") {
		t.Errorf("error %q does not name both remotes of the splice", msg)
	}
	if has(t, local, d) {
		t.Error("a bad splice was stored")
	}
}

func TestBrokenStreamWithNoLaterTierFails(t *testing.T) {
	t.Log("the last tier's stream is not resumed anywhere: its failure ends the read with its code, and nothing is stored")
	d, b, remote := bigBlob(t, 64*teeChunk)
	local := store.NewMemory()
	r1 := &offsetLog{BasicCAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: remote, failAfter: 8 * teeChunk})}
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(r1)}}, fanout.Options{})
	got, err := readAll(context.Background(), c, d, 0)
	if status.Code(err) != codes.Unavailable || len(got) >= len(b) {
		t.Fatalf("read: %d of %d bytes, %v; want fewer bytes and UNAVAILABLE", len(got), len(b), err)
	}
	if offs := r1.got(); len(offs) != 1 {
		t.Errorf("r1 Gets at offsets %v; want one", offs)
	}
	if has(t, local, d) {
		t.Error("a partial blob was stored")
	}
}

func TestBrokenStreamNoOtherCopyListsEveryRemote(t *testing.T) {
	t.Log("a stream that breaks midway with no other copy anywhere ends in an error that gives each remote's own reason, in pull order")
	d, _, remote := bigBlob(t, 64*teeChunk)
	tiers := []fanout.Tier{
		{Name: "r1", CAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: remote, failAfter: 8 * teeChunk})},
		{Name: "r2", CAS: store.NewMemory()},
	}
	c := fanout.NewCAS(store.NewMemory(), tiers, fanout.Options{})
	// A read at an offset waits for the fetch and reports its outcome.
	_, err := readAll(context.Background(), c, d, 1)
	msg := status.Convert(err).Message()
	r1, r2 := strings.Index(msg, "upstream[1] r1: stream broke (Unavailable)"), strings.Index(msg, "upstream[2] r2")
	if status.Code(err) != codes.NotFound || r1 < 0 || r2 < r1 || strings.Count(msg, "upstream[1]") != 1 {
		t.Errorf("read: %v; want NOT_FOUND listing r1's break, then r2's miss", err)
	}
}
