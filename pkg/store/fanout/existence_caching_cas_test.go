package fanout_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

func TestExistenceCachingCAS(t *testing.T) {
	a, _ := blob("a")
	b, _ := blob("b")
	c, _ := blob("c")
	x, _ := blob("x")
	const ttl = time.Minute
	type step struct {
		advance  time.Duration
		ask      []digest.Digest
		wantBase []digest.Digest // what reaches base; nil: not called
		wantMiss []digest.Digest
	}
	for _, tc := range []struct {
		name, why string
		max       int
		steps     []step
	}{{
		name: "second call cached",
		why:  "a digest found present is not asked about again within the TTL",
		max:  10,
		steps: []step{
			{ask: []digest.Digest{a, b}, wantBase: []digest.Digest{a, b}},
			{ask: []digest.Digest{a, b}},
		},
	}, {
		name: "negative answers not cached",
		why:  "a missing blob may be uploaded any moment, so it is always asked again",
		max:  10,
		steps: []step{
			{ask: []digest.Digest{a, x}, wantBase: []digest.Digest{a, x}, wantMiss: []digest.Digest{x}},
			{ask: []digest.Digest{a, x}, wantBase: []digest.Digest{x}, wantMiss: []digest.Digest{x}},
		},
	}, {
		name: "expires after TTL",
		why:  "a remote may drop a blob; the belief lasts only ttl",
		max:  10,
		steps: []step{
			{ask: []digest.Digest{a}, wantBase: []digest.Digest{a}},
			{advance: ttl - time.Second, ask: []digest.Digest{a}},
			{advance: time.Second, ask: []digest.Digest{a}, wantBase: []digest.Digest{a}},
		},
	}, {
		name: "bounded",
		why:  "beyond maxEntries the oldest answer is forgotten",
		max:  2,
		steps: []step{
			{ask: []digest.Digest{a}, wantBase: []digest.Digest{a}},
			{ask: []digest.Digest{b}, wantBase: []digest.Digest{b}},
			{ask: []digest.Digest{c}, wantBase: []digest.Digest{c}},
			{ask: []digest.Digest{b, c}},
			{ask: []digest.Digest{a}, wantBase: []digest.Digest{a}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			clock := clock.NewFake(time.Unix(1e9, 0))
			base := &countingCAS{CAS: memoryWith(t, "a", "b", "c"), name: "base", log: &callLog{}}
			cached := fanout.NewExistenceCachingCAS(base, ttl, tc.max, clock)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				before := len(base.requests())
				missing, err := cached.FindMissing(context.Background(), s.ask)
				if err != nil || !slices.Equal(missing, s.wantMiss) {
					t.Fatalf("step %d: FindMissing = %v, %v; want %v", i, missing, err, s.wantMiss)
				}
				reqs := base.requests()[before:]
				if s.wantBase == nil && len(reqs) != 0 || s.wantBase != nil && (len(reqs) != 1 || !slices.Equal(reqs[0], s.wantBase)) {
					t.Errorf("step %d: base asked %v, want %v", i, reqs, s.wantBase)
				}
			}
		})
	}
}

func TestExistenceCachingCASError(t *testing.T) {
	t.Log("a failing base is reported, with its code, and nothing is cached")
	a, _ := blob("a")
	cached := fanout.NewExistenceCachingCAS(downCAS{}, time.Minute, 10, &clock.Fake{})
	for range 2 {
		if _, err := cached.FindMissing(context.Background(), []digest.Digest{a}); status.Code(err) != codes.Unavailable {
			t.Fatalf("FindMissing: %v, want UNAVAILABLE", err)
		}
	}
	var _ store.CAS = cached
}
