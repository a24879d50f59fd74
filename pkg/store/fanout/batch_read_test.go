package fanout_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// batchCAS is a remote with a batch path of its own over a memory store,
// recording the digests of every GetMany call. corrupt flips the first
// byte of what it serves; down fails every entry with UNAVAILABLE.
type batchCAS struct {
	store.CAS
	corrupt, down bool
	verified      bool // results say their hash was checked, as the upstream client's do
	mu            sync.Mutex
	calls         [][]digest.Digest
}

func (b *batchCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	b.mu.Lock()
	b.calls = append(b.calls, slices.Clone(ds))
	b.mu.Unlock()
	out := make([]store.BlobResult, len(ds))
	for i, d := range ds {
		if b.down {
			out[i].Err = status.Error(codes.Unavailable, "connection refused")
			continue
		}
		got, err := readAll(ctx, b.CAS, d, 0)
		out[i].Data, out[i].Err, out[i].Verified = []byte(got), err, err == nil && b.verified
		if err == nil && b.corrupt && len(got) > 0 {
			out[i].Data[0] ^= 0xff
		}
	}
	return out
}

func (b *batchCAS) asked() [][]digest.Digest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// names returns the digests of ss.
func names(ss ...string) []digest.Digest {
	var out []digest.Digest
	for _, s := range ss {
		d, _ := blob(s)
		out = append(out, d)
	}
	return out
}

func TestGetMany(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		r1        *batchCAS
		r2        store.CAS
		ask       []string
		want      []string // "" for NOT_FOUND
		r1Asked   [][]string
		badData   uint64
	}{
		{"local hit, first remote, second remote, missing", "each tier is asked in one call about what the tiers before it lacked",
			&batchCAS{CAS: memoryWith(t, "b")}, &batchCAS{CAS: memoryWith(t, "c")},
			[]string{"a", "b", "c", "d"}, []string{"a", "b", "c", ""}, [][]string{{"b", "c", "d"}}, 0},
		{"corrupt blob in a batch", "bytes that do not match are rejected, counted and asked of the next remote",
			&batchCAS{CAS: memoryWith(t, "b"), corrupt: true}, &batchCAS{CAS: memoryWith(t, "b")},
			[]string{"b"}, []string{"b"}, [][]string{{"b"}}, 1},
		{"first remote down", "a remote that fails the whole batch is skipped",
			&batchCAS{CAS: memoryWith(t, "b"), down: true}, &batchCAS{CAS: memoryWith(t, "b")},
			[]string{"b"}, []string{"b"}, [][]string{{"b"}}, 0},
		{"second remote without a batch path", "a tier with no batch path of its own is read with one Get per blob",
			&batchCAS{CAS: memoryWith(t)}, memoryWith(t, "c"),
			[]string{"c", "d"}, []string{"c", ""}, [][]string{{"c", "d"}}, 0},
		{"duplicate digests", "a digest asked twice is fetched once and answered twice",
			&batchCAS{CAS: memoryWith(t, "b")}, memoryWith(t),
			[]string{"b", "b"}, []string{"b", "b"}, [][]string{{"b"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			local := memoryWith(t, "a")
			counters := fanout.NewCounters()
			c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: tc.r1}, {Name: "r2", CAS: tc.r2}}, fanout.Options{Counters: counters})
			got := c.GetMany(context.Background(), names(tc.ask...))
			for i, w := range tc.want {
				checkResult(t, tc.ask[i], got[i], w)
			}
			if asked := tc.r1.asked(); !slices.EqualFunc(asked, tc.r1Asked, func(a []digest.Digest, w []string) bool { return slices.Equal(a, names(w...)) }) {
				t.Errorf("r1 was asked %v, want %v", asked, tc.r1Asked)
			}
			for _, w := range tc.want {
				if d, _ := blob(w); w != "" && !has(t, local, d) {
					t.Errorf("%q was not stored locally", w)
				}
			}
			if bad := counters.Snapshot().BadData["r1"]; bad != tc.badData {
				t.Errorf("bad data on r1 = %d, want %d", bad, tc.badData)
			}
		})
	}
}

// checkResult checks that r holds want's bytes, or is NOT_FOUND naming
// both remotes when want is "".
func checkResult(t *testing.T, asked string, r store.BlobResult, want string) {
	t.Helper()
	if want == "" {
		if status.Code(r.Err) != codes.NotFound || !strings.Contains(r.Err.Error(), "upstream[1] r1") || !strings.Contains(r.Err.Error(), "upstream[2] r2") {
			t.Errorf("%q: %v, want NOT_FOUND naming both remotes", asked, r.Err)
		}
		return
	}
	if r.Err != nil || !bytes.Equal(r.Data, []byte(want)) {
		t.Errorf("%q: %q, %v; want %q", asked, r.Data, r.Err, want)
	}
}

func TestGetManyJoinsRunningFetch(t *testing.T) {
	t.Log("a batch miss that a Get is already fetching waits for that fetch instead of a second download")
	d, _ := blob("shared")
	blocking := newBlockingCAS(memoryWith(t, "shared"))
	remote := &countingCAS{BasicCAS: blocking, name: "r1", log: &callLog{}}
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(remote)}}, fanout.Options{})
	getErr := make(chan error, 1)
	go func() { got, err := readAll(context.Background(), c, d, 0); getErr <- wrong(got, "shared", err) }()
	<-blocking.entered
	batch := make(chan store.BlobResult, 1)
	go func() { batch <- c.GetMany(context.Background(), []digest.Digest{d})[0] }()
	testutil.Eventually(t, "the batch to wait on the fetch", func() bool { return fanout.Waiting(c, d) == 2 })
	close(blocking.release)
	if err := <-getErr; err != nil {
		t.Errorf("Get: %v", err)
	}
	checkResult(t, "shared", <-batch, "shared")
	if got := remote.gets.Load(); got != 1 {
		t.Errorf("remote Gets = %d, want 1", got)
	}
}

func TestGetBytes(t *testing.T) {
	t.Log("reading one blob whole (ReadBytes: GetMany of one) serves local hits and fetches misses like a batch of one")
	c := fanout.NewCAS(memoryWith(t, "here"), []fanout.Tier{{Name: "r1", CAS: memoryWith(t, "there")}}, fanout.Options{})
	for _, s := range []string{"here", "there"} {
		d, _ := blob(s)
		got, err := store.ReadBytes(context.Background(), c, d)
		checkResult(t, s, store.BlobResult{Data: got, Err: err}, s)
	}
}

// racingLocal is a local store whose first GetMany answers NOT_FOUND for
// everything and then stores late, as if a fetch of another read had ended
// just after it looked; vanish is reported present by FindMissing but
// reads as NOT_FOUND, as if evicted in between.
type racingLocal struct {
	*store.Memory
	t      *testing.T
	late   []string
	vanish digest.Set
	reads  int
}

func (l *racingLocal) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	l.reads++
	out := make([]store.BlobResult, len(ds))
	for i, d := range ds {
		if l.reads == 1 || l.vanish.Has(d) {
			out[i].Err = status.Errorf(codes.NotFound, "blob %s not found", d)
			continue
		}
		got, err := readAll(ctx, l.Memory, d, 0)
		out[i].Data, out[i].Err = []byte(got), err
	}
	if l.reads == 1 {
		for _, s := range l.late {
			d, b := blob(s)
			if err := l.Memory.Put(ctx, d, bytes.NewReader(b)); err != nil {
				l.t.Fatal(err)
			}
		}
	}
	return out
}

func (l *racingLocal) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	missing, err := l.Memory.FindMissing(ctx, ds)
	return slices.DeleteFunc(missing, l.vanish.Has), err
}

func TestGetManyRecheck(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		late      []string // stored locally right after GetMany's first look
		vanish    []string // present by FindMissing, gone when read
		r1Asked   []string
	}{
		{"arrived before the claims", "a blob another fetch stored meanwhile is served from local, not fetched again",
			[]string{"a"}, nil, []string{"b"}},
		{"evicted after the re-check", "a blob FindMissing saw but that is gone when read is fetched after all",
			nil, []string{"a"}, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			local := &racingLocal{Memory: memoryWith(t), t: t, late: tc.late, vanish: digest.NewSet(names(tc.vanish...)...)}
			r1 := &batchCAS{CAS: memoryWith(t, "a", "b")}
			c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: r1}}, fanout.Options{})
			ask := []string{"a", "b"}
			got := c.GetMany(context.Background(), names(ask...))
			for i, s := range ask {
				checkResult(t, s, got[i], s)
			}
			want := digest.NewSet(names(tc.r1Asked...)...).Sorted()
			if asked := r1.asked(); len(asked) != 1 || !slices.Equal(digest.NewSet(asked[0]...).Sorted(), want) {
				t.Errorf("r1 was asked %v, want one call for %v", asked, want)
			}
		})
	}
}

// verifiedCountingStore counts the puts that skip hashing.
type verifiedCountingStore struct {
	*store.Memory
	verifiedPuts atomic.Int64
}

func (v *verifiedCountingStore) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	if hint.Verified {
		v.verifiedPuts.Add(1)
	}
	return v.Memory.PutBytes(ctx, d, data, hint)
}

func TestGetManyHashesOnlyWhatNoOneChecked(t *testing.T) {
	// Why: a blob the remote's client already checked against its digest
	// is stored without hashing it again; anything else is verified by the
	// local store (so a tier that does not check cannot slip bad bytes in,
	// see "corrupt blob in a batch").
	for _, verified := range []bool{true, false} {
		local := &verifiedCountingStore{Memory: memoryWith(t)}
		r1 := &batchCAS{CAS: memoryWith(t, "b", "c"), verified: verified}
		c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: r1}}, fanout.Options{})
		got := c.GetMany(context.Background(), names("b", "c"))
		checkResult(t, "b", got[0], "b")
		checkResult(t, "c", got[1], "c")
		want := int64(0)
		if verified {
			want = 2
		}
		if n := local.verifiedPuts.Load(); n != want {
			t.Errorf("verified=%v: %d puts skipped hashing, want %d", verified, n, want)
		}
	}
}
