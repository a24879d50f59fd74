package remotes

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/pkg/proxy/fanout"
	"github.com/castd/castd/pkg/proxy/upstream"
	"github.com/castd/castd/pkg/proxy/writeback"
)

// DefaultMaxConcurrentPerRemote is higher than the fan-out's own default:
// a cold read of many small blobs costs one remote round trip per blob, and
// a BatchReadBlobs of a client fans out to many of them at once.
const DefaultMaxConcurrentPerRemote = 64

// Options tunes New. The zero value is usable.
type Options struct {
	// Registerer receives the upstream, fan-out and write-back metrics;
	// nil registers none.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// ExistenceTTL is how long a remote's "present" answer is believed.
	// Zero means fanout.DefaultExistenceTTL; negative disables the cache.
	ExistenceTTL time.Duration
	// MaxConcurrentPerRemote bounds the calls in flight to one remote per
	// instance fan-out. Zero means DefaultMaxConcurrentPerRemote.
	MaxConcurrentPerRemote int
	// BreakerFailures and BreakerCoolDown tune every remote's circuit
	// breaker; zero means the upstream defaults.
	BreakerFailures int
	BreakerCoolDown time.Duration
	// Writeback tunes the push queue (its Registerer and Logger default to
	// the ones above).
	Writeback writeback.Options
	// Dial are extra options for every upstream.Dial (tests inject clocks).
	Dial []upstream.Option
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.ExistenceTTL == 0:
		o.ExistenceTTL = fanout.DefaultExistenceTTL
	case o.ExistenceTTL < 0:
		o.ExistenceTTL = 0
	}
	if o.MaxConcurrentPerRemote <= 0 {
		o.MaxConcurrentPerRemote = DefaultMaxConcurrentPerRemote
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = upstream.DefaultBreakerFailures
	}
	if o.BreakerCoolDown <= 0 {
		o.BreakerCoolDown = upstream.DefaultBreakerCoolDown
	}
	if o.Writeback.Registerer == nil {
		o.Writeback.Registerer = o.Registerer
	}
	if o.Writeback.Logger == nil {
		o.Writeback.Logger = o.Logger
	}
	return o
}
