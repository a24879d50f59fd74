package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// askedBase is an observedCAS over a memory store holding contents that
// records each FindMissing request it receives.
func askedBase(t *testing.T, contents ...string) (*observedCAS, func() [][]digest.Digest) {
	mem := store.NewMemory()
	for _, c := range contents {
		testutil.Put(t, mem, []byte(c))
	}
	var asked [][]digest.Digest
	base := &observedCAS{mem: mem, onFind: func(ds []digest.Digest) { asked = append(asked, slices.Clone(ds)) }}
	return base, func() [][]digest.Digest { return asked }
}

func name(s string) digest.Digest { return digest.OfBytes([]byte(s)) }

func TestExistenceCachingCAS(t *testing.T) {
	a, b, c, x := name("a"), name("b"), name("c"), name("x")
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
			clock := &settableClock{now: time.Unix(1e9, 0)}
			base, asked := askedBase(t, "a", "b", "c")
			cached := store.NewExistenceCachingCAS(store.WithGenericFastPaths(base), ttl, tc.max, clock, nil)
			for i, s := range tc.steps {
				clock.now = clock.now.Add(s.advance)
				before := len(asked())
				missing, err := cached.FindMissing(context.Background(), s.ask)
				if err != nil || !slices.Equal(missing, s.wantMiss) {
					t.Fatalf("step %d: FindMissing = %v, %v; want %v", i, missing, err, s.wantMiss)
				}
				reqs := asked()[before:]
				if s.wantBase == nil && len(reqs) != 0 || s.wantBase != nil && (len(reqs) != 1 || !slices.Equal(reqs[0], s.wantBase)) {
					t.Errorf("step %d: base asked %v, want %v", i, reqs, s.wantBase)
				}
			}
		})
	}
}

func TestExistenceCachingCASError(t *testing.T) {
	t.Log("a failing base is reported, with its code, and nothing is cached")
	base, _ := askedBase(t)
	base.down.Store(true)
	cached := store.NewExistenceCachingCAS(store.WithGenericFastPaths(base), time.Minute, 10, &settableClock{}, nil)
	for range 2 {
		if _, err := cached.FindMissing(context.Background(), []digest.Digest{name("a")}); status.Code(err) != codes.Unavailable {
			t.Fatalf("FindMissing: %v, want UNAVAILABLE", err)
		}
	}
}

func TestExistenceCachingCASLearnsFromEveryRead(t *testing.T) {
	ctx := context.Background()
	a := name("a")
	for _, tc := range []struct {
		name string
		read func(store.CAS) error
	}{
		{"Get", func(c store.CAS) error { _, err := c.Get(ctx, a, 0); return err }},
		{"GetWith", func(c store.CAS) error {
			_, err := c.GetWith(ctx, a, 0, store.GetHint{ConsumerVerifies: true})
			return err
		}},
		{"GetMany", func(c store.CAS) error { return c.GetMany(ctx, []digest.Digest{a})[0].Err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log("a read that finds the remote unreachable forgets what the remote was believed to hold, whichever read method it was")
			base, asked := askedBase(t, "a")
			cached := store.NewExistenceCachingCAS(store.WithGenericFastPaths(base), time.Minute, 10, &settableClock{}, nil)
			for range 2 {
				if m, err := cached.FindMissing(ctx, []digest.Digest{a}); err != nil || len(m) != 0 {
					t.Fatalf("FindMissing = %v, %v; want a present", m, err)
				}
			}
			if n := len(asked()); n != 1 {
				t.Fatalf("base asked %d times before the failure; want 1 (then cached)", n)
			}
			base.down.Store(true)
			if err := tc.read(cached); status.Code(err) != codes.Unavailable {
				t.Fatalf("read of a down remote: %v; want UNAVAILABLE", err)
			}
			base.down.Store(false)
			if _, err := cached.FindMissing(ctx, []digest.Digest{a}); err != nil {
				t.Fatal(err)
			}
			if n := len(asked()); n != 2 {
				t.Errorf("base asked %d times; want 2: the failed read must drop the cached answer", n)
			}
		})
	}
}
