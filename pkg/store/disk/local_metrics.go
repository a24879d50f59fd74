package disk

import "github.com/prometheus/client_golang/prometheus"

// storeMetrics exposes a Local store's counters. The values live in the
// store (atomics); the collectors read them at scrape time, so the data path
// pays nothing for metrics.
type storeMetrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

func registerMetrics(l *Store, reg prometheus.Registerer) (*storeMetrics, error) {
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	m := &storeMetrics{reg: reg, collectors: []prometheus.Collector{
		gauge("castd_store_bytes", "Bytes the store occupies against its quota: stored blobs, uploads in progress, and pack bytes of deleted blobs not yet compacted away.", l.usage),
		gauge("castd_store_objects", "Blobs in the local store.", l.ix.objects.Load),
		gauge("castd_store_quota_bytes", "Current store limit in bytes (quota lowered by reserved disk space); -1 when unlimited.", func() int64 { return l.limit(false) }),
		gauge("castd_store_pack_bytes", "Bytes of pack files on disk (small blobs), including deleted blobs not yet compacted away.", l.packs.diskBytes),
		gauge("castd_store_held_bytes", "Bytes of blobs held against eviction for the write-back queue (pushes waiting for their remotes).", l.HeldBytes),
		gauge("castd_store_pending_bytes", "Bytes reserved by uploads in progress.", l.pending.Load),
		counter("castd_store_pack_compactions_total", "Pack files removed by compaction after their live blobs were rewritten.", l.compactions.Load),
		counter("castd_store_pack_moved_bytes_total", "Bytes of live small blobs that compaction rewrote into the active pack.", l.movedBytes.Load),
		gauge("castd_store_writes_refused", "Why the store refuses writes: 0 it does not, 1 its filesystem is full, 2 it was opened read-only on a full filesystem.", l.writesRefused),
		counter("castd_store_evictions_total", "Blobs evicted to stay under the quota.", l.evictions.Load),
		counter("castd_store_verify_failures_total", "Stored blobs found corrupt or missing on read, then deleted.", l.verifyFailures.Load),
		counter("castd_store_scrubbed_blobs_total", "Stored blobs verified by a scrub.", l.scrubbed.Load),
		counter("castd_store_scrub_corrupt_total", "Stored blobs a scrub found corrupt or missing, then deleted.", l.scrubCorrupt.Load),
		counter("castd_store_put_bytes_total", "Bytes of blobs newly stored.", l.putBytes.Load),
		counter("castd_store_get_bytes_total", "Bytes of blobs served.", l.getBytes.Load),
	}}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			m.collectors = m.collectors[:i]
			m.unregister()
			return nil, err
		}
	}
	return m, nil
}

func (m *storeMetrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
