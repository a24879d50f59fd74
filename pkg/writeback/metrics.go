package writeback

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the castd_writeback_* collectors of one Queue.
type metrics struct {
	failures  *prometheus.CounterVec
	completed *prometheus.CounterVec
	dropped   *prometheus.CounterVec // remote, reason
}

// Reasons of castd_writeback_dropped_total.
const (
	// DropUnsupportedFunction is an entry whose digest function the
	// remote does not take (its Capabilities do not list it).
	DropUnsupportedFunction = "unsupported-function"
)

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
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "castd_writeback_dropped_total",
			Help: "Write-back entries dropped without a push because no push could succeed, by remote and reason (unsupported-function: the remote does not take the entry's digest function).",
		}, []string{"remote", "reason"}),
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
	m.dropped = promreg.Register(reg, m.dropped)
	parked := &parkedCollector{q: q, desc: prometheus.NewDesc("castd_writeback_parked_entries",
		"Write-back entries not retried because the remote refused their role for good (UNIMPLEMENTED, PERMISSION_DENIED, ...), by remote, role and code; present only for parked roles.",
		[]string{"remote", "role", "code"}, nil)}
	promreg.Register[prometheus.Collector](reg, depth)
	promreg.Register[prometheus.Collector](reg, parked)
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

// parkedCollector reports each parked role's entries at scrape time.
type parkedCollector struct {
	q    *Queue
	desc *prometheus.Desc
}

func (c *parkedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *parkedCollector) Collect(ch chan<- prometheus.Metric) {
	for name, r := range c.q.Stats().Remotes {
		for _, p := range r.Parked {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(p.Entries), name, string(p.Role), p.Code.String())
		}
	}
}

// Stats is a snapshot of the queue, for Status and metrics.
type Stats struct {
	Depth     int
	Oldest    time.Duration
	Failures  uint64
	Completed uint64
	// HeldBytes is what the local store holds against eviction for the
	// queue (0 when it holds nothing, or the store cannot hold).
	HeldBytes int64
	Remotes   map[string]RemoteStats
}

// RemoteStats is one remote's share of Stats.
type RemoteStats struct {
	Depth     int
	Failures  uint64
	Completed uint64
	LastError string
	// Parked lists the roles the remote refused for good, by role.
	Parked []ParkedRole
}

// ParkedRole is a role of a remote whose pushes are not retried until a
// restart, and why.
type ParkedRole struct {
	Role    Role
	Code    codes.Code
	Message string
	Since   time.Time
	// Entries is how many entries wait for the role.
	Entries int
}

// Stats returns the current depth, age of the oldest entry and counters.
// Cost: one pass over the pending entries under the queue's lock.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := Stats{Remotes: map[string]RemoteStats{}}
	var oldest time.Time
	if q.holder != nil {
		s.HeldBytes = q.holder.HeldBytes()
	}
	for name, rq := range q.remotes {
		s.Remotes[name] = RemoteStats{Depth: len(rq.entries), Failures: rq.failures, Completed: rq.completed, LastError: rq.lastError, Parked: rq.parkedRoles()}
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

// parkedRoles lists rq's parked roles, sorted, with the entries waiting
// for each (an action result or asset waiting only because the CAS role is
// parked counts for the CAS role); the caller holds mu.
func (rq *remoteQueue) parkedRoles() []ParkedRole {
	if len(rq.parked) == 0 {
		return nil
	}
	waiting := map[Role]int{}
	for _, e := range rq.entries {
		if _, ok := rq.parked[e.Kind.role()]; ok {
			waiting[e.Kind.role()]++
		} else if rq.blocked(e) {
			waiting[RoleCAS]++ // its content goes through the parked CAS role
		}
	}
	var out []ParkedRole
	for role, p := range rq.parked {
		out = append(out, ParkedRole{Role: role, Code: p.code, Message: p.message, Since: p.since, Entries: waiting[role]})
	}
	slices.SortFunc(out, func(a, b ParkedRole) int { return strings.Compare(string(a.Role), string(b.Role)) })
	return out
}
