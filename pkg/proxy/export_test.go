package proxy

import (
	"time"

	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
)

// ExpireRegistrations runs one registration-ttl sweep now.
func ExpireRegistrations(s *Set) { s.expireRegistrations() }

// The tuning conversions, for the test that each configuration key
// reaches its option.
var (
	FanoutOptions    = fanoutOptions
	ACOptions        = acOptions
	AssetOptions     = assetOptions
	WritebackOptions = writebackOptions
	UpstreamConfig   = upstreamConfig
)

// NewStatusRecordingCAS is newStatusRecordingCAS with counts of its own,
// read by the returned function.
func NewStatusRecordingCAS(base store.CAS) (store.CAS, func() (hits, misses int64)) {
	rec := &outcomes{}
	return newStatusRecordingCAS(base, rec), rec.counts
}

// ReadTierOptions is cache.remotes' share of a remote's read decorators,
// defaults applied.
func ReadTierOptions(t policy.RemoteTuning) (maxConcurrent int, existenceTTL time.Duration, existenceMaxEntries int) {
	o := readTierOptionsOf(t)
	return o.maxConcurrent, o.existenceTTL, o.existenceMaxEntries
}
