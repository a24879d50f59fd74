package fanout_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// remoteSpec describes one remote of a test fan-out.
type remoteSpec struct {
	name    string
	has     []string
	down    bool // every call UNAVAILABLE
	corrupt bool // serves flipped bytes
	// existenceTTL, if set, puts the remote behind an existence cache, as
	// castd's builder does (pkg/proxy/build.go).
	existenceTTL time.Duration
}

// testFanout is a fan-out over a memory local store and counted remotes.
type testFanout struct {
	cas      store.CAS
	local    *store.Memory
	remotes  []*countingCAS
	log      *callLog
	counters *fanout.Counters
	reg      *prometheus.Registry
}

func newTestFanout(t *testing.T, local []string, specs []remoteSpec, opts fanout.Options) *testFanout {
	t.Helper()
	f := &testFanout{local: memoryWith(t, local...), log: &callLog{}, counters: fanout.NewCounters(), reg: prometheus.NewRegistry()}
	var tiers []fanout.Tier
	for _, s := range specs {
		var base store.BasicCAS = memoryWith(t, s.has...)
		if s.corrupt {
			base = corruptCAS{base}
		}
		if s.down {
			base = downCAS{}
		}
		c := &countingCAS{BasicCAS: base, name: s.name, log: f.log}
		f.remotes = append(f.remotes, c)
		tier := store.WithGenericFastPaths(c)
		if s.existenceTTL > 0 {
			tier = store.NewExistenceCachingCAS(tier, s.existenceTTL, 1000, clock.Real(), nil)
		}
		tiers = append(tiers, fanout.Tier{Name: s.name, CAS: tier, Origin: "user"})
	}
	opts.Counters, opts.Registerer = f.counters, f.reg
	f.cas = fanout.NewCAS(f.local, tiers, opts)
	return f
}

func TestGet(t *testing.T) {
	d, _ := blob("hello, world")
	for _, tc := range []struct {
		name, why string
		local     []string
		remotes   []remoteSpec
		offset    int64
		want      string
		wantCode  codes.Code
		wantCalls []string // remote Gets in order
		wantInMsg []string
		wantBad   map[string]uint64
	}{{
		name:    "local hit",
		why:     "a blob held locally is served without asking any remote",
		local:   []string{"hello, world"},
		remotes: []remoteSpec{{name: "r1", has: []string{"hello, world"}}},
		want:    "hello, world",
	}, {
		name:      "first remote hit",
		why:       "the first remote that has the blob serves it; later ones are not asked",
		remotes:   []remoteSpec{{name: "r1", has: []string{"hello, world"}}, {name: "r2", has: []string{"hello, world"}}},
		want:      "hello, world",
		wantCalls: []string{"r1.Get"},
	}, {
		name:      "second remote hit",
		why:       "pull order: the first remote is asked first and its NOT_FOUND moves on to the second",
		remotes:   []remoteSpec{{name: "r1"}, {name: "r2", has: []string{"hello, world"}}},
		want:      "hello, world",
		wantCalls: []string{"r1.Get", "r2.Get"},
	}, {
		name:      "first remote down",
		why:       "an unreachable remote is skipped, not fatal",
		remotes:   []remoteSpec{{name: "r1", down: true}, {name: "r2", has: []string{"hello, world"}}},
		want:      "hello, world",
		wantCalls: []string{"r1.Get", "r2.Get"},
	}, {
		name:      "all remotes down",
		why:       "when no remote could answer, the failure keeps its code (not a miss) and the message says why each failed",
		remotes:   []remoteSpec{{name: "r1", down: true}, {name: "r2", down: true}},
		wantCode:  codes.Unavailable,
		wantCalls: []string{"r1.Get", "r2.Get"},
		wantInMsg: []string{"upstream[1] r1", "upstream[2] r2", "Unavailable", "connection refused"},
	}, {
		name:      "first remote down, second misses",
		why:       "a remote that answered NOT_FOUND makes it a miss; the down one is named in the message",
		remotes:   []remoteSpec{{name: "r1", down: true}, {name: "r2"}},
		wantCode:  codes.NotFound,
		wantCalls: []string{"r1.Get", "r2.Get"},
		wantInMsg: []string{"upstream[1] r1", "connection refused", "upstream[2] r2"},
	}, {
		name:      "found nowhere",
		why:       "every remote answering NOT_FOUND is NOT_FOUND",
		remotes:   []remoteSpec{{name: "r1"}, {name: "r2"}},
		wantCode:  codes.NotFound,
		wantCalls: []string{"r1.Get", "r2.Get"},
		wantInMsg: []string{d.String()},
	}, {
		name:      "no remotes",
		why:       "a fan-out without remotes is the local store",
		wantCode:  codes.NotFound,
		wantInMsg: []string{"no remote"},
	}, {
		name:      "first remote corrupt",
		why:       "bytes that do not match the digest are rejected and counted, and the next remote serves",
		remotes:   []remoteSpec{{name: "r1", has: []string{"hello, world"}, corrupt: true}, {name: "r2", has: []string{"hello, world"}}},
		want:      "hello, world",
		wantCalls: []string{"r1.Get", "r2.Get"},
		wantBad:   map[string]uint64{"r1": 1},
	}, {
		name:      "offset read after remote hit",
		why:       "the whole blob is stored locally, then the read starts at the offset asked",
		remotes:   []remoteSpec{{name: "r1", has: []string{"hello, world"}}},
		offset:    7,
		want:      "world",
		wantCalls: []string{"r1.Get"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newTestFanout(t, tc.local, tc.remotes, fanout.Options{})
			got, err := readAll(context.Background(), f.cas, d, tc.offset)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("Get: code %v (%v), want %v", status.Code(err), err, tc.wantCode)
			}
			if got != tc.want {
				t.Errorf("Get = %q, want %q", got, tc.want)
			}
			if err != nil {
				t.Logf("error: %v", err)
			}
			for _, s := range tc.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if calls := f.log.get(); !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("remote calls %q, want %q", calls, tc.wantCalls)
			}
			checkAfterGet(t, f, d, tc.wantCode, tc.wantBad)
		})
	}
}

// checkAfterGet checks what a Get left behind: the blob stored locally
// (with the right bytes) after a hit, and the bad-data counts.
func checkAfterGet(t *testing.T, f *testFanout, d digest.Digest, code codes.Code, wantBad map[string]uint64) {
	t.Helper()
	if stored := has(t, f.local, d); stored != (code == codes.OK) {
		t.Errorf("stored locally = %v, want %v", stored, code == codes.OK)
	}
	stats := f.counters.Snapshot()
	for remote, n := range wantBad {
		if stats.BadData[remote] != n {
			t.Errorf("BadData[%s] = %d, want %d", remote, stats.BadData[remote], n)
		}
		if v := metricValue(t, f.reg, "castd_fanout_bad_data_total", remote); v != float64(n) {
			t.Errorf("castd_fanout_bad_data_total{remote=%q} = %v, want %d", remote, v, n)
		}
	}
	if len(wantBad) == 0 && len(stats.BadData) != 0 {
		t.Errorf("unexpected bad data %v", stats.BadData)
	}
	if code == codes.NotFound && stats.Misses != 1 {
		t.Errorf("Misses = %d, want 1", stats.Misses)
	}
}

func TestGetCountsHits(t *testing.T) {
	t.Log("a Status RPC reports local hits and per-remote hits")
	f := newTestFanout(t, []string{"local"}, []remoteSpec{{name: "r1"}, {name: "r2", has: []string{"remote"}}}, fanout.Options{})
	for _, s := range []string{"local", "remote", "remote", "nowhere"} {
		d, _ := blob(s)
		_, _ = readAll(context.Background(), f.cas, d, 0)
	}
	got := f.counters.Snapshot()
	if got.LocalHits != 2 || got.RemoteHits["r2"] != 1 || got.RemoteHits["r1"] != 0 || got.Misses != 1 {
		t.Errorf("stats = %+v, want 2 local hits (the second read of \"remote\" is local), 1 hit on r2, 1 miss", got)
	}
}

func TestGetCallerCancellation(t *testing.T) {
	t.Log("a client giving up is CANCELED, never turned into a miss")
	d, _ := blob("slow")
	remote := newBlockingCAS(memoryWith(t, "slow"))
	counters := fanout.NewCounters()
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "slow", CAS: store.WithGenericFastPaths(remote)}}, fanout.Options{Counters: counters})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := readAll(ctx, c, d, 0); errc <- err }()
	<-remote.entered
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("Get after cancel: %v, want CANCELED", err)
	}
	if n := counters.Snapshot().Misses; n != 0 {
		t.Errorf("Misses = %d, want 0", n)
	}
}

func TestPut(t *testing.T) {
	good, goodBytes := blob("written")
	for _, tc := range []struct {
		name, why string
		bytes     []byte
		wantCode  codes.Code
	}{
		{"stored locally", "a write lands in the local store; write-back is the queue's job", goodBytes, codes.OK},
		{"bad bytes", "a rejected write is stored nowhere", []byte("other"), codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			remote := &countingCAS{BasicCAS: store.NewMemory(), name: "r1", log: &callLog{}}
			local := store.NewMemory()
			c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(remote)}}, fanout.Options{})
			err := c.Put(context.Background(), good, bytes.NewReader(tc.bytes))
			if status.Code(err) != tc.wantCode {
				t.Fatalf("Put: %v, want %v", err, tc.wantCode)
			}
			if want := tc.wantCode == codes.OK; has(t, local, good) != want {
				t.Errorf("local holds the blob = %v, want %v", !want, want)
			}
			if calls := remote.log.get(); len(calls) != 0 {
				t.Errorf("Put reached a remote: %v", calls)
			}
		})
	}
}

func TestOnRemoteHit(t *testing.T) {
	t.Log("re-caching needs to know which tier served a fetched blob")
	d, _ := blob("from the project")
	type hit struct {
		d    digest.Digest
		tier fanout.Tier
	}
	var hits []hit
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{
		{Name: "mine", CAS: store.NewMemory(), Origin: "user"},
		{Name: "theirs", CAS: memoryWith(t, "from the project"), Origin: "project"},
	}, fanout.Options{OnRemoteHit: func(d digest.Digest, tier fanout.Tier) { hits = append(hits, hit{d, tier}) }})
	for range 2 {
		if _, err := readAll(context.Background(), c, d, 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(hits) != 1 || hits[0].d != d || hits[0].tier.Name != "theirs" || hits[0].tier.Origin != "project" {
		t.Errorf("OnRemoteHit calls %+v, want one for %s from theirs (project)", hits, d)
	}
}

func TestSharedRegistry(t *testing.T) {
	t.Log("the fan-outs of several projects share one registry and one series per tier")
	reg := prometheus.NewRegistry()
	d, _ := blob("x")
	for range 2 {
		c := fanout.NewCAS(memoryWith(t, "x"), nil, fanout.Options{Registerer: reg})
		if _, err := readAll(context.Background(), c, d, 0); err != nil {
			t.Fatal(err)
		}
		fanout.NewActionCache(store.NewMemory(), nil, c, fanout.ACOptions{Registerer: reg})
	}
	if v := metricValue(t, reg, "castd_fanout_hits_total", "local"); v != 2 {
		t.Errorf("castd_fanout_hits_total{tier=\"local\"} = %v, want 2", v)
	}
}

// labellingCAS is down and labels its errors the way a remote's client
// does ("upstream NAME: ...").
type labellingCAS struct {
	downCAS
	label string
}

func (c labellingCAS) Get(ctx context.Context, d digest.Digest, off int64) (io.ReadCloser, error) {
	_, err := c.downCAS.Get(ctx, d, off)
	return nil, grpcerr.Label(c.label, err)
}

func TestTierLabelReplacesTheRemotesOwn(t *testing.T) {
	// Why: the fan-out names the remote by its place in pull order; the
	// label the remote's client put on the error names the same remote and
	// is dropped by its structure, not by matching its text.
	tiers := []fanout.Tier{{Name: "r1", CAS: labellingCAS{label: "upstream r1"}}}
	c := fanout.NewCAS(store.NewMemory(), tiers, fanout.Options{})
	_, err := c.Get(context.Background(), digest.OfBytes([]byte("x")), 0)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Get: %v; want UNAVAILABLE", err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "upstream[1] r1: connection refused (Unavailable)") || strings.Contains(msg, "upstream r1") {
		t.Fatalf("message %q; want the remote labelled once, by its tier", msg)
	}
}
