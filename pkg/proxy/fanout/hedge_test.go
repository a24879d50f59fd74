package fanout_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/proxy/fanout"
	"github.com/castd/castd/pkg/store"
)

// pacedCAS advances clock by cost on every call, so that the fan-out
// measures that answer time; while gate is set, calls wait for it to be
// closed (or for their context) first.
type pacedCAS struct {
	store.CAS
	clock *fakeClock
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
	p.clock.advance(p.cost)
	return nil
}

func (p *pacedCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if err := p.pace(ctx); err != nil {
		return nil, err
	}
	return p.CAS.FindMissing(ctx, ds)
}

func (p *pacedCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if err := p.pace(ctx); err != nil {
		return nil, err
	}
	return p.CAS.Get(ctx, d, offset)
}

func (p *pacedCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	if err := p.pace(ctx); err != nil {
		return store.GetMany(ctx, downCAS{}, ds)
	}
	return store.GetMany(ctx, p.CAS, ds)
}

func TestSlowFirstTierIsHedged(t *testing.T) {
	t.Log("once the first remote is known to answer far slower than the second, a CAS read asks both at once and takes the second's copy without waiting for the first")
	warm, _ := blob("warm-up, in r2 only")
	d, _ := blob("in r2 only")
	for _, rd := range reads {
		t.Run(rd.name, func(t *testing.T) {
			clock := &fakeClock{}
			r1 := &pacedCAS{CAS: memoryWith(t), clock: clock, cost: 50 * time.Millisecond}
			r2 := &pacedCAS{CAS: memoryWith(t, "warm-up, in r2 only", "in r2 only"), clock: clock, cost: time.Millisecond}
			// Only a hedge can end a read while r1 waits: its failover
			// delay is an hour away.
			opts := fanout.Options{ExistenceTTL: -1, FailoverDelay: time.Hour, Clock: clock}
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
		})
	}
}
