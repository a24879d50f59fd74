package fanout_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// pacedCAS advances clock by cost on every call, so that the fan-out
// measures that answer time; while gate is set, calls wait for it to be
// closed (or for their context) first.
type pacedCAS struct {
	store.CAS
	clock *clock.Fake
	cost  time.Duration
	gate  chan struct{}
}

func (p *pacedCAS) pace(ctx context.Context) error {
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.clock.Advance(p.cost)
	return nil
}

func (p *pacedCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if err := p.pace(ctx); err != nil {
		return nil, err
	}
	return p.CAS.FindMissing(ctx, ds)
}

func (p *pacedCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return p.GetWith(ctx, d, offset, store.GetHint{})
}

func (p *pacedCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	if err := p.pace(ctx); err != nil {
		return nil, err
	}
	return p.CAS.GetWith(ctx, d, offset, hint)
}

func (p *pacedCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	if err := p.pace(ctx); err != nil {
		return downCAS{}.GetMany(ctx, ds)
	}
	return p.CAS.GetMany(ctx, ds)
}

func TestSlowFirstTierIsHedged(t *testing.T) {
	t.Log("once the first remote is known to answer far slower than the second, a CAS read asks both at once and takes the second's copy without waiting for the first")
	warm, _ := blob("warm-up, in r2 only")
	d, _ := blob("in r2 only")
	for _, rd := range reads {
		t.Run(rd.name, func(t *testing.T) {
			clock := &clock.Fake{}
			r1 := &pacedCAS{CAS: memoryWith(t), clock: clock, cost: 50 * time.Millisecond}
			r2 := &pacedCAS{CAS: memoryWith(t, "warm-up, in r2 only", "in r2 only"), clock: clock, cost: time.Millisecond}
			// Only a hedge can end a read while r1 waits: its failover
			// delay is an hour away.
			reg := prometheus.NewRegistry()
			opts := fanout.Options{FailoverDelay: time.Hour, Clock: clock, Registerer: reg}
			c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: r1}, {Name: "r2", CAS: r2}}, opts)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := rd.read(ctx, c, warm); err != nil {
				t.Fatalf("warm-up %s: %v", rd.name, err)
			}
			gate := make(chan struct{})
			defer close(gate)
			r1.gate = gate
			if err := rd.read(ctx, c, d); err != nil {
				t.Fatalf("%s with r1 (50 ms) held and r2 (1 ms) holding the blob: %v; want r2's copy at once", rd.name, err)
			}
			if n := metricValue(t, reg, "castd_fanout_hedged_total", "r1"); n != 1 {
				t.Errorf("castd_fanout_hedged_total{remote=r1} = %v; want 1", n)
			}
		})
	}
}

func TestHedgedBatchTakesEachBlobWhereItIs(t *testing.T) {
	t.Log("a hedged batch asks both remotes about every blob: each is served from whichever has it, and only what neither has is missing")
	warm, _ := blob("warm-up, in r2 only")
	x, xb := blob("x, in r1 only")
	y, yb := blob("y, in r2 only")
	z, _ := blob("z, nowhere")
	clock := &clock.Fake{}
	r1 := &pacedCAS{CAS: memoryWith(t, "x, in r1 only"), clock: clock, cost: 50 * time.Millisecond}
	r2 := &pacedCAS{CAS: memoryWith(t, "warm-up, in r2 only", "y, in r2 only"), clock: clock, cost: time.Millisecond}
	opts := fanout.Options{FailoverDelay: time.Hour, Clock: clock}
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: r1}, {Name: "r2", CAS: r2}}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r := c.GetMany(ctx, []digest.Digest{warm})[0]; r.Err != nil {
		t.Fatalf("warm-up: %v", r.Err)
	}
	missing, err := c.FindMissing(ctx, []digest.Digest{x, y, z})
	if err != nil || len(missing) != 1 || missing[0] != z {
		t.Errorf("FindMissing(x, y, z) = %v, %v; want [z]", missing, err)
	}
	rs := c.GetMany(ctx, []digest.Digest{x, y, z})
	if string(rs[0].Data) != string(xb) || rs[0].Err != nil || string(rs[1].Data) != string(yb) || rs[1].Err != nil {
		t.Errorf("GetMany x, y = (%q, %v), (%q, %v); want r1's x and r2's y", rs[0].Data, rs[0].Err, rs[1].Data, rs[1].Err)
	}
	if status.Code(rs[2].Err) != codes.NotFound {
		t.Errorf("GetMany z: %v; want NOT_FOUND", rs[2].Err)
	}
}

// breakingCAS serves base's blobs teeChunk bytes per Read and breaks
// (UNAVAILABLE) after failAfter bytes, calling onBreak first.
type breakingCAS struct {
	store.BasicCAS
	failAfter int
	onBreak   func()
}

func (c breakingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := chunkyCAS{BasicCAS: c.BasicCAS, failAfter: c.failAfter}.Get(ctx, d, offset)
	if err != nil {
		return nil, err
	}
	return &breakNotifier{ReadCloser: rc, onBreak: c.onBreak}, nil
}

type breakNotifier struct {
	io.ReadCloser
	onBreak func()
}

func (b *breakNotifier) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.onBreak()
	}
	return n, err
}

func TestStreamFromHedgeWinnerFinishedByTheSlowTier(t *testing.T) {
	t.Log("when the near remote that won a hedge breaks midway and nothing comes after it, the far remote the hedge did not wait for finishes the stream")
	warm, _ := blob("warm-up, in r2 only")
	d, b, remote := bigBlob(t, 64*teeChunk)
	near := memoryWith(t, "warm-up, in r2 only")
	if err := near.Put(context.Background(), d, strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	clock := &clock.Fake{}
	r1 := &pacedCAS{CAS: remote, clock: clock, cost: 50 * time.Millisecond}
	var once sync.Once
	gate := make(chan struct{})
	release := func() { once.Do(func() { close(gate) }) }
	defer release()
	r2 := &pacedCAS{CAS: store.WithGenericFastPaths(breakingCAS{BasicCAS: near, failAfter: 8 * teeChunk, onBreak: release}), clock: clock, cost: time.Millisecond}
	r1Offsets := &offsetLog{BasicCAS: r1}
	opts := fanout.Options{FailoverDelay: time.Hour, Clock: clock}
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(r1Offsets)}, {Name: "r2", CAS: r2}}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := readAll(ctx, c, warm, 0); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	r1.gate = gate // r1 holds its calls until r2's stream breaks
	got, err := readAll(ctx, c, d, 0)
	if err != nil || got != string(b) {
		t.Fatalf("read: %d of %d bytes (exact: %v), %v; want the blob, finished from r1", len(got), len(b), got == string(b), err)
	}
	// Whether r1's hedged open is logged before r2 answers is the
	// scheduler's affair; that r1 finished the stream where r2 broke is not.
	offs := r1Offsets.got()
	if slices.Max(offs) < 8*teeChunk {
		t.Errorf("r1 Gets at offsets %v; want one where r2 broke (at or past %d)", offs, 8*teeChunk)
	}
}
