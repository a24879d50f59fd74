package writeback

import (
	"time"

	"github.com/castd/castd/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the castd_writeback_* collectors of one Queue.
type metrics struct {
	failures  *prometheus.CounterVec
	completed *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, q *Queue) *metrics {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_writeback_failures_total",
			Help: "Write-back push attempts that failed, by remote.",
		}, []string{"remote"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_writeback_completed_total",
			Help: "Write-back entries pushed (or found present), by remote.",
		}, []string{"remote"}),
	}
	if reg == nil {
		return m
	}
	depth := &depthCollector{q: q, desc: prometheus.NewDesc("castd_writeback_queue_depth",
		"Pending write-back entries, by remote.", []string{"remote"}, nil)}
	oldest := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "castd_writeback_oldest_seconds",
		Help: "Age of the oldest pending write-back entry; 0 when the queue is empty.",
	}, func() float64 { return q.Stats().Oldest.Seconds() })
	m.failures = promreg.Register(reg, m.failures)
	m.completed = promreg.Register(reg, m.completed)
	promreg.Register[prometheus.Collector](reg, depth)
	promreg.Register(reg, oldest)
	return m
}

// depthCollector reports each remote's depth at scrape time.
type depthCollector struct {
	q    *Queue
	desc *prometheus.Desc
}

func (c *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *depthCollector) Collect(ch chan<- prometheus.Metric) {
	for name, r := range c.q.Stats().Remotes {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.Depth), name)
	}
}

// Stats is a snapshot of the queue, for Status and metrics.
type Stats struct {
	Depth     int
	Oldest    time.Duration
	Failures  uint64
	Completed uint64
	Remotes   map[string]RemoteStats
}

// RemoteStats is one remote's share of Stats.
type RemoteStats struct {
	Depth     int
	Failures  uint64
	Completed uint64
	LastError string
}

// Stats returns the current depth, age of the oldest entry and counters.
// Cost: one pass over the pending entries under the queue's lock.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := Stats{Remotes: map[string]RemoteStats{}}
	var oldest time.Time
	for name, rq := range q.remotes {
		s.Remotes[name] = RemoteStats{Depth: len(rq.entries), Failures: rq.failures, Completed: rq.completed, LastError: rq.lastError}
		s.Depth += len(rq.entries)
		s.Failures += rq.failures
		s.Completed += rq.completed
		for _, e := range rq.entries {
			if oldest.IsZero() || e.Enqueued.Before(oldest) {
				oldest = e.Enqueued
			}
		}
	}
	if !oldest.IsZero() {
		s.Oldest = time.Since(oldest)
	}
	return s
}
