package grpcclient

import "time"

// Defaults of the upstream client: the one place these values are defined.
// The daemon's configuration (connection-config), pkg/proxy/remotes and
// this package all read a field the same way:
//
//   - RetryLimit: zero means no retries; a negative value (the
//     configuration leaving retry-limit unset) means DefaultRetryLimit.
//   - Durations (RetryDelay, RequestTimeout, IdleTimeout, the breaker's
//     cool-down): zero means the default; none of them can be switched off.
//   - Keepalive: zero means no keepalive pings (gRPC's own meaning).
//   - Breaker failures: zero means DefaultBreakerFailures; negative
//     disables the breaker.
const (
	DefaultRetryLimit      = 4
	DefaultRetryDelay      = time.Second
	DefaultRequestTimeout  = 2 * time.Minute
	DefaultIdleTimeout     = time.Minute
	DefaultBreakerFailures = 5
	DefaultBreakerCoolDown = 30 * time.Second
	// DefaultLogInterval is the shortest gap between two warnings of one
	// kind (remote, role, state) about a remote.
	DefaultLogInterval = 10 * time.Second
)
