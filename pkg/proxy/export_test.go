package proxy

import "github.com/castd/castd/pkg/store"

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
