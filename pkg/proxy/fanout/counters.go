package fanout

import (
	"maps"
	"sync"

	"github.com/castd/castd/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// Counters accumulates what a fan-out served, for a Status RPC. One
// Counters may be shared by the fan-outs of several projects. The zero
// value is not usable; use NewCounters. Safe for concurrent use; each
// update takes a short mutex.
type Counters struct {
	mu sync.Mutex
	s  Stats
}

// Stats is a snapshot of Counters.
type Stats struct {
	// LocalHits counts reads served by the local store without a fetch.
	LocalHits uint64
	// Misses counts reads found nowhere reachable (NOT_FOUND).
	Misses uint64
	// RemoteHits counts fetches served by each remote, by tier name.
	RemoteHits map[string]uint64
	// BadData counts blobs rejected because a remote's bytes did not match
	// the digest, by tier name.
	BadData map[string]uint64
}

// NewCounters returns zeroed counters.
func NewCounters() *Counters {
	return &Counters{s: Stats{RemoteHits: map[string]uint64{}, BadData: map[string]uint64{}}}
}

// Snapshot returns a copy of the current values. Cost: one map copy per
// remote label.
func (c *Counters) Snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.RemoteHits = maps.Clone(c.s.RemoteHits)
	s.BadData = maps.Clone(c.s.BadData)
	return s
}

func (c *Counters) update(f func(*Stats)) {
	if c == nil {
		return
	}
	c.mu.Lock()
	f(&c.s)
	c.mu.Unlock()
}

// metrics records one fan-out's outcomes in its Counters and in Prometheus.
type metrics struct {
	counters *Counters
	hits     *prometheus.CounterVec
	misses   prometheus.Counter
	badData  *prometheus.CounterVec
}

// newMetrics builds the collectors named prefix+"_hits_total" and so on,
// registered on reg (which may be nil).
func newMetrics(reg prometheus.Registerer, prefix, what string, c *Counters) *metrics {
	return &metrics{
		counters: c,
		hits: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_hits_total",
			Help: what + " reads served, by tier (\"local\" or the remote's name).",
		}, []string{"tier"})),
		misses: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: prefix + "_misses_total",
			Help: what + " reads found in no reachable tier.",
		})),
		badData: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_bad_data_total",
			Help: what + " data from a remote rejected because it did not match its digest.",
		}, []string{"remote"})),
	}
}

func (m *metrics) localHit() {
	m.hits.WithLabelValues("local").Inc()
	m.counters.update(func(s *Stats) { s.LocalHits++ })
}

func (m *metrics) remoteHit(name string) {
	m.hits.WithLabelValues(name).Inc()
	m.counters.update(func(s *Stats) { s.RemoteHits[name]++ })
}

func (m *metrics) miss() {
	m.misses.Inc()
	m.counters.update(func(s *Stats) { s.Misses++ })
}

func (m *metrics) bad(name string) {
	m.badData.WithLabelValues(name).Inc()
	m.counters.update(func(s *Stats) { s.BadData[name]++ })
}
