package fanout

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/promreg"
)

// failoverMetrics count how often CAS reads did not wait on a remote:
// calls hedged with the next tier, and streams continued from the next
// tier after breaking or stalling midway. Both are labelled with the
// remote that was slow or broke.
type failoverMetrics struct {
	hedged  *prometheus.CounterVec
	resumed *prometheus.CounterVec
}

func newFailoverMetrics(reg prometheus.Registerer) failoverMetrics {
	return failoverMetrics{
		hedged: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_fanout_hedged_total",
			Help: "CAS reads that asked the next tier too because this remote was slow to answer.",
		}, []string{"remote"})),
		resumed: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_fanout_resumed_total",
			Help: "CAS streams from this remote that broke or stalled midway and were continued from the next tier.",
		}, []string{"remote"})),
	}
}
