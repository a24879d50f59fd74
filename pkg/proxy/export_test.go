package proxy

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
