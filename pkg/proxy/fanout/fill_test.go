package fanout_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/proxy/fanout"
	"github.com/castd/castd/pkg/store"
)

// gatedCAS is a local store whose Puts signal entered and then wait for
// release (or the caller's context).
type gatedCAS struct {
	store.CAS
	entered chan digest.Digest
	release chan struct{}
}

func (g *gatedCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	g.entered <- d
	select {
	case <-g.release:
		return g.CAS.Put(ctx, d, r)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// heldBatchCAS holds every GetMany until release is closed, signalling
// entered first.
type heldBatchCAS struct {
	*batchCAS
	entered chan struct{}
	release chan struct{}
}

func (h *heldBatchCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	h.entered <- struct{}{}
	<-h.release
	return h.batchCAS.GetMany(ctx, ds)
}

// fillEnv is a fan-out over a gated local store and one batch remote
// holding "alpha" and "bravo", whose every read (batch or not) is counted.
type fillEnv struct {
	mem    *store.Memory // behind the gate
	local  *gatedCAS
	remote *countingCAS
	tier   store.CAS // over remote
	c      store.CAS
	reg    *prometheus.Registry
	hits   chan bool // per OnRemoteHit: whether local held the blob then
}

func newFillEnv(t *testing.T, tier func(store.CAS) store.CAS, opts fanout.Options) *fillEnv {
	e := &fillEnv{mem: store.NewMemory(), reg: prometheus.NewRegistry(), hits: make(chan bool, 10)}
	e.local = &gatedCAS{CAS: e.mem, entered: make(chan digest.Digest, 10), release: make(chan struct{})}
	e.remote = &countingCAS{CAS: memoryWith(t, "alpha", "bravo"), name: "r1", log: &callLog{}}
	opts.Registerer = e.reg
	opts.OnRemoteHit = func(d digest.Digest, _ fanout.Tier) {
		missing, _ := e.mem.FindMissing(context.Background(), []digest.Digest{d})
		e.hits <- len(missing) == 0
	}
	e.tier = tier(e.remote)
	e.c = fanout.NewCAS(e.local, []fanout.Tier{{Name: "r1", CAS: e.tier}}, opts)
	return e
}

func (e *fillEnv) get(s string) store.BlobResult {
	return e.c.(store.BatchGetter).GetMany(context.Background(), names(s))[0]
}

func (e *fillEnv) holds(s string) bool {
	d, _ := blob(s)
	missing, _ := e.mem.FindMissing(context.Background(), []digest.Digest{d})
	return len(missing) == 0
}

func (e *fillEnv) drain(t *testing.T) {
	if left := fanout.DrainFills(e.local, time.Minute); left != 0 {
		t.Fatalf("DrainFills left %d fills", left)
	}
}

func batched(cas store.CAS) store.CAS { return &batchCAS{CAS: cas} }

func TestBackgroundFill(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		tier      func(store.CAS) store.CAS
		opts      fanout.Options
		run       func(t *testing.T, e *fillEnv)
	}{
		{"answered before the local Put", "a verified blob goes to the client without waiting for the local store; OnRemoteHit fires once it is stored",
			batched, fanout.Options{}, func(t *testing.T, e *fillEnv) {
				checkResult(t, "alpha", e.get("alpha"), "alpha")
				<-e.local.entered
				if e.holds("alpha") || gauge(t, e.reg, "castd_fanout_fill_pending") != 1 {
					t.Fatal("the fill is not pending while its Put is held")
				}
				close(e.local.release)
				if stored := <-e.hits; !stored {
					t.Error("OnRemoteHit fired before the blob was stored")
				}
				e.drain(t)
				if !e.holds("alpha") || gauge(t, e.reg, "castd_fanout_fill_pending") != 0 {
					t.Error("the blob is not stored after the fill")
				}
			}},
		{"read while the fill is pending", "a batch read and a Get of a blob not stored yet are served from the fill, not the remote",
			batched, fanout.Options{}, func(t *testing.T, e *fillEnv) {
				checkResult(t, "alpha", e.get("alpha"), "alpha")
				<-e.local.entered
				checkResult(t, "alpha", e.get("alpha"), "alpha")
				d, _ := blob("alpha")
				if got, err := readAll(context.Background(), e.c, d, 1); got != "alpha"[1:] || err != nil {
					t.Errorf("Get at 1 = %q, %v", got, err)
				}
				if n := e.remote.gets.Load(); n != 1 {
					t.Errorf("remote reads = %d, want 1", n)
				}
				close(e.local.release)
				e.drain(t)
			}},
		{"waiter takes the leader's bytes", "a batch read joining a running batch fetch gets its bytes, though local has not stored them",
			func(cas store.CAS) store.CAS {
				return &heldBatchCAS{batchCAS: &batchCAS{CAS: cas}, entered: make(chan struct{}, 1), release: make(chan struct{})}
			}, fanout.Options{}, func(t *testing.T, e *fillEnv) {
				h := e.tier.(*heldBatchCAS)
				first, second := make(chan store.BlobResult, 1), make(chan store.BlobResult, 1)
				go func() { first <- e.get("alpha") }()
				<-h.entered
				go func() { second <- e.get("alpha") }()
				d, _ := blob("alpha")
				eventually(t, "the second read to join", func() bool { return fanout.Waiting(e.c, d) == 2 })
				close(h.release)
				checkResult(t, "alpha", <-first, "alpha")
				checkResult(t, "alpha", <-second, "alpha")
				if n := e.remote.gets.Load(); n != 1 || e.holds("alpha") {
					t.Errorf("remote reads = %d (want 1), stored = %v (want not yet)", n, e.holds("alpha"))
				}
				close(e.local.release)
				e.drain(t)
			}},
		{"full fill queue stores inline", "when the queue is full the read stores its blob before answering: back-pressure, not a drop",
			batched, fanout.Options{FillMaxBlobs: 1, FillWorkers: 1}, func(t *testing.T, e *fillEnv) {
				checkResult(t, "alpha", e.get("alpha"), "alpha")
				<-e.local.entered // the only worker holds "alpha": "bravo" cannot be queued
				answer := make(chan store.BlobResult, 1)
				go func() { answer <- e.get("bravo") }()
				<-e.local.entered
				select {
				case <-answer:
					t.Fatal("answered before its inline Put")
				default:
				}
				close(e.local.release)
				checkResult(t, "bravo", <-answer, "bravo")
				if !e.holds("bravo") || metricValue(t, e.reg, "castd_fanout_fill_inline_total", "") != 1 {
					t.Error("b was not stored inline")
				}
				e.drain(t)
			}},
		{"drained on close", "DrainFills returns once pending fills are stored; later fills are inline",
			batched, fanout.Options{}, func(t *testing.T, e *fillEnv) {
				checkResult(t, "alpha", e.get("alpha"), "alpha")
				<-e.local.entered
				drained := make(chan int, 1)
				go func() { drained <- fanout.DrainFills(e.local, time.Minute) }()
				select {
				case <-drained:
					t.Fatal("DrainFills returned while a Put was held")
				default:
				}
				close(e.local.release)
				if left := <-drained; left != 0 || !e.holds("alpha") || !<-e.hits {
					t.Fatalf("after DrainFills: left %d, stored %v", left, e.holds("alpha"))
				}
				checkResult(t, "bravo", e.get("bravo"), "bravo")
				if !e.holds("bravo") {
					t.Error("a fill after the drain was not stored before the answer")
				}
			}},
		{"corrupt remote bytes", "bytes that do not match are never served, counted, and never reach the fill",
			func(cas store.CAS) store.CAS { return &batchCAS{CAS: cas, corrupt: true} }, fanout.Options{}, func(t *testing.T, e *fillEnv) {
				if r := e.get("alpha"); r.Err == nil || r.Data != nil {
					t.Errorf("served %q, %v; want an error", r.Data, r.Err)
				}
				if metricValue(t, e.reg, "castd_fanout_bad_data_total", "r1") != 1 || len(e.local.entered) != 0 {
					t.Error("bad data was not counted, or reached the local store")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			tc.run(t, newFillEnv(t, tc.tier, tc.opts))
		})
	}
}

func TestFailedFill(t *testing.T) {
	t.Log("a fill whose local Put fails is logged and counted, the client still had its bytes, and the next read fetches again")
	reg := prometheus.NewRegistry()
	remote := &countingCAS{CAS: memoryWith(t, "alpha"), name: "r1", log: &callLog{}}
	local := &flakyPutCAS{CAS: store.NewMemory()}
	local.failures.Store(1)
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: &batchCAS{CAS: remote}}}, fanout.Options{Registerer: reg})
	get := func() store.BlobResult { return c.(store.BatchGetter).GetMany(context.Background(), names("alpha"))[0] }
	checkResult(t, "alpha", get(), "alpha")
	eventually(t, "the failed fill to end", func() bool {
		return metricValue(t, reg, "castd_fanout_fill_failures_total", "") == 1 && gauge(t, reg, "castd_fanout_fill_pending") == 0
	})
	checkResult(t, "alpha", get(), "alpha")
	fanout.DrainFills(local, time.Minute)
	if d, _ := blob("alpha"); remote.gets.Load() != 2 || !has(t, local, d) {
		t.Errorf("remote reads = %d (want 2), stored = %v", remote.gets.Load(), has(t, local, d))
	}
}

// gauge returns the gauge name in reg (0 when absent).
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
