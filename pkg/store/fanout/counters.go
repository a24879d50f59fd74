package fanout

import (
	"context"
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

// Hits is LocalHits plus every remote's hits.
func (s Stats) Hits() uint64 {
	n := s.LocalHits
	for _, h := range s.RemoteHits {
		n += h
	}
	return n
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

// Kinds of lookup, the kind label of castd_cache_requests_total.
const (
	// KindCAS is a blob read (ByteStream, BatchReadBlobs, a tree walk).
	KindCAS = "cas"
	// KindActionCache is a client's GetActionResult.
	KindActionCache = "action_cache"
	// KindExecuteLookup is Execute's action-cache lookup before it runs
	// an action (see WithLookupKind).
	KindExecuteLookup = "execute_lookup"
)

// Tier label values of castd_cache_requests_total besides remote names.
const (
	// TierLocal is a hit in the local store.
	TierLocal = "local"
	// TierMiss is a lookup found in no reachable tier.
	TierMiss = "miss"
)

type lookupKindKey struct{}

// WithLookupKind returns ctx marked so that action-cache lookups made
// with it are counted under kind (KindExecuteLookup for Execute's lookup)
// instead of KindActionCache. Cost: one context value.
func WithLookupKind(ctx context.Context, kind string) context.Context {
	return context.WithValue(ctx, lookupKindKey{}, kind)
}

// lookupKind is the kind ctx was marked with, or def.
func lookupKind(ctx context.Context, def string) string {
	if k, ok := ctx.Value(lookupKindKey{}).(string); ok {
		return k
	}
	return def
}

// collectors are every fan-out series on one registry, shared by the
// fan-outs of all instances; each series carries its instance's name.
type collectors struct {
	requests, served             *prometheus.CounterVec
	hits, acHits, badData, acBad *prometheus.CounterVec
	misses, acMisses             *prometheus.CounterVec
	hedged, resumed              *prometheus.CounterVec
}

// collectorsOn registers the fan-out collectors on reg (nil: unregistered
// ones), or returns those registered already.
func collectorsOn(reg prometheus.Registerer) collectors {
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
	}
	return collectors{
		requests: vec("castd_cache_requests_total",
			"Cache lookups by instance, kind (cas, action_cache, execute_lookup) and the tier that answered (\"local\", a remote's name, or \"miss\").",
			"instance", "kind", "tier"),
		served: vec("castd_cache_served_bytes_total",
			"Blob bytes served to clients by instance and the tier they came from (\"local\" or a remote's name).",
			"instance", "tier"),
		hits:     vec("castd_fanout_hits_total", "CAS reads served, by instance and tier (\"local\" or the remote's name).", "instance", "tier"),
		acHits:   vec("castd_fanout_ac_hits_total", "ActionCache reads served, by instance and tier (\"local\" or the remote's name).", "instance", "tier"),
		misses:   vec("castd_fanout_misses_total", "CAS reads found in no reachable tier, by instance.", "instance"),
		acMisses: vec("castd_fanout_ac_misses_total", "ActionCache reads found in no reachable tier, by instance.", "instance"),
		badData:  vec("castd_fanout_bad_data_total", "CAS data from a remote rejected because it did not match its digest.", "instance", "remote"),
		acBad:    vec("castd_fanout_ac_bad_data_total", "ActionCache data from a remote rejected because it did not match its digest.", "instance", "remote"),
		hedged: vec("castd_fanout_hedged_total",
			"CAS reads that asked the next tier too because this remote was slow to answer.", "instance", "remote"),
		resumed: vec("castd_fanout_resumed_total",
			"CAS streams from this remote that broke or stalled midway and were continued from the next tier.", "instance", "remote"),
	}
}

// ForgetInstance deletes every fan-out series of instance from reg (local,
// miss and each remote's). Call it when an instance is no longer served,
// once nothing reads through its fan-outs: a count from a read still
// finishing afterwards brings its series back. A nil reg does nothing.
// Safe for concurrent use; cost: one pass over each collector's series.
func ForgetInstance(reg prometheus.Registerer, instance string) {
	if reg == nil {
		return
	}
	for _, v := range collectorsOn(reg).all() {
		v.DeletePartialMatch(prometheus.Labels{"instance": instance})
	}
}

// ForgetRemotes deletes the series of the named remotes of instance from
// reg, keeping its local and miss series: call it with the remotes that
// left the pull order of an instance still served, once its new fan-outs
// serve. No names, or a nil reg, does nothing. Safe for concurrent use;
// cost: one pass over each collector's series per name.
func ForgetRemotes(reg prometheus.Registerer, instance string, remotes ...string) {
	if reg == nil {
		return
	}
	c := collectorsOn(reg)
	for _, name := range remotes {
		for _, v := range []*prometheus.CounterVec{c.requests, c.served, c.hits, c.acHits} {
			v.DeletePartialMatch(prometheus.Labels{"instance": instance, "tier": name})
		}
		for _, v := range []*prometheus.CounterVec{c.badData, c.acBad, c.hedged, c.resumed} {
			v.DeletePartialMatch(prometheus.Labels{"instance": instance, "remote": name})
		}
	}
}

func (c collectors) all() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{c.requests, c.served, c.hits, c.acHits, c.misses, c.acMisses, c.badData, c.acBad, c.hedged, c.resumed}
}

// metrics records one fan-out's outcomes in its Counters and in
// Prometheus, labelled with its instance; kind is KindCAS or
// KindActionCache (a lookup's kind may override it, see forLookup).
type metrics struct {
	counters *Counters
	instance string
	kind     string
	requests *prometheus.CounterVec
	served   *prometheus.CounterVec
	hits     *prometheus.CounterVec
	misses   *prometheus.CounterVec
	badData  *prometheus.CounterVec
}

// newMetrics returns the metrics of a fan-out of kind (KindCAS or
// KindActionCache) serving instance, on reg (which may be nil).
func newMetrics(reg prometheus.Registerer, instance, kind string, c *Counters) *metrics {
	all := collectorsOn(reg)
	m := &metrics{counters: c, instance: instance, kind: kind, requests: all.requests, served: all.served,
		hits: all.hits, misses: all.misses, badData: all.badData}
	if kind != KindCAS {
		m.hits, m.misses, m.badData = all.acHits, all.acMisses, all.acBad
	}
	return m
}

// forLookup returns m counting under the kind ctx was marked with.
func (m *metrics) forLookup(ctx context.Context) *metrics {
	k := lookupKind(ctx, m.kind)
	if k == m.kind {
		return m
	}
	c := *m
	c.kind = k
	return &c
}

// localHit counts a read served by the local store, of size bytes (0 for
// an action result).
func (m *metrics) localHit(size int64) {
	m.hit(TierLocal, size)
	m.counters.update(func(s *Stats) { s.LocalHits++ })
}

// remoteHit counts a read served by the remote called name.
func (m *metrics) remoteHit(name string, size int64) {
	m.hit(name, size)
	m.counters.update(func(s *Stats) { s.RemoteHits[name]++ })
}

func (m *metrics) hit(tier string, size int64) {
	m.hits.WithLabelValues(m.instance, tier).Inc()
	m.requests.WithLabelValues(m.instance, m.kind, tier).Inc()
	if size > 0 {
		m.served.WithLabelValues(m.instance, tier).Add(float64(size))
	}
}

func (m *metrics) miss() {
	m.misses.WithLabelValues(m.instance).Inc()
	m.requests.WithLabelValues(m.instance, m.kind, TierMiss).Inc()
	m.counters.update(func(s *Stats) { s.Misses++ })
}

func (m *metrics) bad(name string) {
	m.badData.WithLabelValues(m.instance, name).Inc()
	m.counters.update(func(s *Stats) { s.BadData[name]++ })
}
