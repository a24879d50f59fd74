package fanout_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// requests reads castd_cache_requests_total{instance, kind, tier} on reg.
func requests(t *testing.T, reg *prometheus.Registry, instance, kind, tier string) float64 {
	t.Helper()
	return testutil.ToFloat64(cacheVecs(reg).requests.WithLabelValues(instance, kind, tier))
}

type vecs struct{ requests, served *prometheus.CounterVec }

// cacheVecs returns the collectors registered on reg, by registering equal
// ones (promreg hands back the existing collector).
func cacheVecs(reg *prometheus.Registry) vecs {
	get := func(c *prometheus.CounterVec) *prometheus.CounterVec {
		if err := reg.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				return are.ExistingCollector.(*prometheus.CounterVec)
			}
			panic(err)
		}
		return c
	}
	return vecs{
		requests: get(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "castd_cache_requests_total",
			Help: "Cache lookups by instance, kind (cas, action_cache, execute_lookup) and the tier that answered (\"local\", a remote's name, or \"miss\")."},
			[]string{"instance", "kind", "tier"})),
		served: get(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "castd_cache_served_bytes_total",
			Help: "Blob bytes served to clients by instance and the tier they came from (\"local\" or a remote's name)."},
			[]string{"instance", "tier"})),
	}
}

func TestCacheRequestsByInstanceKindAndTier(t *testing.T) {
	t.Log("two instances sharing one remote each count their own hits, misses and bytes by tier")
	reg := prometheus.NewRegistry()
	shared := memoryWith(t, "remote blob")
	local := memoryWith(t, "local blob")
	remoteD, _ := blob("remote blob")
	localD, _ := blob("local blob")
	missD, _ := blob("nowhere")
	a := fanout.NewCAS(local, []fanout.Tier{{Name: "shared", CAS: shared}}, fanout.Options{Registerer: reg, Instance: "a"})
	b := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "shared", CAS: shared}}, fanout.Options{Registerer: reg, Instance: "b"})
	for _, d := range []digest.Digest{remoteD, remoteD, localD} {
		if _, err := readAll(context.Background(), a, d, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readAll(context.Background(), a, missD, 0); err == nil {
		t.Fatal("read of a blob nowhere succeeded")
	}
	if _, err := readAll(context.Background(), b, remoteD, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		instance, tier string
		want           float64
	}{
		{"a", "shared", 1}, {"a", fanout.TierLocal, 2}, {"a", fanout.TierMiss, 1},
		{"b", "shared", 1}, {"b", fanout.TierLocal, 0}, {"b", fanout.TierMiss, 0},
	} {
		if got := requests(t, reg, c.instance, fanout.KindCAS, c.tier); got != c.want {
			t.Errorf("castd_cache_requests_total{instance=%q,kind=cas,tier=%q} = %v, want %v", c.instance, c.tier, got, c.want)
		}
	}
	served := cacheVecs(reg).served
	if got := testutil.ToFloat64(served.WithLabelValues("a", "shared")); got != float64(remoteD.Size) {
		t.Errorf("bytes served to a from shared = %v, want %d", got, remoteD.Size)
	}
	if got := testutil.ToFloat64(served.WithLabelValues("a", fanout.TierLocal)); got != float64(remoteD.Size+localD.Size) {
		t.Errorf("bytes served to a from local = %v, want %d", got, remoteD.Size+localD.Size)
	}
}

func TestActionCacheLookupKinds(t *testing.T) {
	t.Log("a client's GetActionResult and Execute's lookup (marked by WithLookupKind) are counted apart")
	reg := prometheus.NewRegistry()
	action, _ := blob("action")
	other, _ := blob("other action")
	local := store.NewMemory()
	if err := local.UpdateActionResult(context.Background(), action, resultWith("")); err != nil {
		t.Fatal(err)
	}
	ac := fanout.NewActionCache(local, nil, store.NewMemory(), fanout.ACOptions{Registerer: reg, Instance: "p"})
	exec := fanout.WithLookupKind(context.Background(), fanout.KindExecuteLookup)
	for _, ctx := range []context.Context{context.Background(), exec, exec} {
		if _, err := ac.GetActionResult(ctx, action); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ac.GetActionResult(exec, other); err == nil {
		t.Fatal("lookup of an unknown action succeeded")
	}
	for _, c := range []struct {
		kind, tier string
		want       float64
	}{
		{fanout.KindActionCache, fanout.TierLocal, 1}, {fanout.KindActionCache, fanout.TierMiss, 0},
		{fanout.KindExecuteLookup, fanout.TierLocal, 2}, {fanout.KindExecuteLookup, fanout.TierMiss, 1},
	} {
		if got := requests(t, reg, "p", c.kind, c.tier); got != c.want {
			t.Errorf("castd_cache_requests_total{kind=%q,tier=%q} = %v, want %v", c.kind, c.tier, got, c.want)
		}
	}
}

func TestForget(t *testing.T) {
	t.Log("the series of a remote no longer configured, or of a dropped instance, leave /metrics")
	reg := prometheus.NewRegistry()
	d, _ := blob("x")
	for _, inst := range []string{"a", "b"} {
		c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "gone", CAS: memoryWith(t, "x")}}, fanout.Options{Registerer: reg, Instance: inst})
		if _, err := readAll(context.Background(), c, d, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(context.Background(), c, d, 0); err != nil {
			t.Fatal(err)
		}
	}
	series := func() int { return testutil.CollectAndCount(cacheVecs(reg).requests) }
	if n := series(); n != 4 {
		t.Fatalf("%d request series before Forget, want 4 (local and gone for a and b)", n)
	}
	fanout.ForgetRemotes(reg, "a")
	if n := series(); n != 4 {
		t.Fatalf("%d request series after forgetting no remote, want 4", n)
	}
	fanout.ForgetRemotes(reg, "a", "gone")
	if n := series(); n != 3 {
		t.Errorf("%d request series after forgetting a's remote, want 3", n)
	}
	if got := requests(t, reg, "b", fanout.KindCAS, "gone"); got != 1 {
		t.Errorf("b's series of the remote = %v after forgetting a's, want it kept at 1", got)
	}
	fanout.ForgetInstance(reg, "b")
	if got := testutil.CollectAndCount(cacheVecs(reg).served); got != 1 {
		t.Errorf("%d bytes series after dropping b, want a's local one", got)
	}
}
