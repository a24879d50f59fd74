package promreg_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/castd/castd/internal/promreg"
)

func TestRegisterSharesOneSeries(t *testing.T) {
	// Two components building the same counter over one registry count
	// into the one registered series.
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "castd_test_total", Help: "test"}
	a := promreg.Register(reg, prometheus.NewCounter(opts))
	b := promreg.Register(reg, prometheus.NewCounter(opts))
	a.Inc()
	b.Inc()
	if got := testutil.ToFloat64(a); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
	// Without a registry the collector still counts, unregistered.
	c := promreg.Register(nil, prometheus.NewCounter(opts))
	c.Inc()
	if testutil.ToFloat64(c) != 1 {
		t.Fatal("unregistered counter does not count")
	}
}

func TestRegisterConflictPanics(t *testing.T) {
	// A different collector under a taken name is a programming error.
	reg := prometheus.NewRegistry()
	promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "castd_x", Help: "a"}))
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on a conflicting registration")
		}
	}()
	promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "castd_x", Help: "b"}))
}
