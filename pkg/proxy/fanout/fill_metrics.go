package fanout

import "github.com/prometheus/client_golang/prometheus"

// fillMetrics meters a fill queue: how much waits to be stored, how often
// a full queue made a read store inline, and how many stores failed.
type fillMetrics struct {
	pending  prometheus.Gauge
	inline   prometheus.Counter
	failures prometheus.Counter
}

// newFillMetrics builds the castd_fanout_fill_* collectors, registered on
// reg (which may be nil).
func newFillMetrics(reg prometheus.Registerer) *fillMetrics {
	return &fillMetrics{
		pending: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "castd_fanout_fill_pending",
			Help: "Blobs fetched from a remote and answered, waiting to be stored locally.",
		})),
		inline: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "castd_fanout_fill_inline_total",
			Help: "Fetched blobs stored locally before answering because the fill queue was full (back-pressure).",
		})),
		failures: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "castd_fanout_fill_failures_total",
			Help: "Fetched blobs whose local store failed; they are fetched again when next read.",
		})),
	}
}
