package fanout

import (
	"github.com/prometheus/client_golang/prometheus"
)

// failoverMetrics count how often CAS reads did not wait on a remote:
// calls hedged with the next tier, and streams continued from the next
// tier after breaking or stalling midway. Both are labelled with the
// fan-out's instance and the remote that was slow or broke.
type failoverMetrics struct {
	instance string
	hedged   *prometheus.CounterVec
	resumed  *prometheus.CounterVec
}

func newFailoverMetrics(reg prometheus.Registerer, instance string) failoverMetrics {
	c := collectorsOn(reg)
	return failoverMetrics{instance: instance, hedged: c.hedged, resumed: c.resumed}
}
