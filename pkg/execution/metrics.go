package execution

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/promreg"
	"github.com/castd/castd/pkg/policy"
)

// Outcomes of an Execute, the outcome label of castd_executions_total.
const (
	outcomeCacheHit = "cache_hit"
	outcomeLocal    = "local"
	outcomeRemote   = "remote"
	outcomeFallback = "fallback"
	outcomeFailed   = "failed"
)

// metrics are the execution collectors. Safe for concurrent use.
type metrics struct {
	executions *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	fallbacks  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		executions: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_executions_total",
			Help: "Executes answered, by the instance's scenario and the outcome (cache_hit, local, remote, fallback, failed).",
		}, []string{"scenario", "outcome"})),
		duration: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "castd_execution_duration_seconds",
			Help:    "Time from the start of an execution (or cache lookup) until its result was known.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 4, 12),
		}, []string{"scenario", "outcome"})),
		fallbacks: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_execution_local_fallback_total",
			Help: "Scenario-1 actions run locally instead, by reason (unavailable, platform, api-version, digest-function).",
		}, []string{"reason"})),
	}
}

func (m *metrics) observe(sc policy.Scenario, outcome string, took time.Duration) {
	m.executions.WithLabelValues(sc.String(), outcome).Inc()
	m.duration.WithLabelValues(sc.String(), outcome).Observe(took.Seconds())
}
