package execution_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/store/fanout"
)

func TestExecuteLookupCountedApart(t *testing.T) {
	t.Log("Execute's cache lookup is counted as execute_lookup: a miss before the first run, a local hit after")
	reg := prometheus.NewRegistry()
	n := newNode(t, setup{tweak: func(p *execution.Plan) {
		opts := fanout.ACOptions{Registerer: reg, Instance: "proj"}
		p.AC = fanout.NewActionCache(p.LocalAC, nil, p.CAS, opts)
		p.LocalLookup = fanout.NewHitCountingActionCache(p.LocalLookup, opts)
	}})
	ad := n.upload(t, "echo ok > out.txt", 0)
	for range 2 {
		if _, _, err := execute(t, n.client, ad, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		kind, tier string
		want       float64
	}{
		{fanout.KindExecuteLookup, fanout.TierMiss, 1},
		{fanout.KindExecuteLookup, fanout.TierLocal, 1},
		{fanout.KindActionCache, fanout.TierMiss, 0},
		{fanout.KindActionCache, fanout.TierLocal, 0},
	} {
		if got := cacheRequests(t, reg, "proj", c.kind, c.tier); got != c.want {
			t.Errorf("castd_cache_requests_total{instance=proj,kind=%s,tier=%s} = %v, want %v", c.kind, c.tier, got, c.want)
		}
	}
}

// cacheRequests reads castd_cache_requests_total{instance,kind,tier} on
// reg (0 when the series does not exist).
func cacheRequests(t *testing.T, reg *prometheus.Registry, instance, kind, tier string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"instance": instance, "kind": kind, "tier": tier}
	for _, f := range families {
		if f.GetName() != "castd_cache_requests_total" {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
