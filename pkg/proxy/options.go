package proxy

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// Options tunes New. The zero value is usable; a zero field means the
// default defined by the package that uses it (fanout's or upstream's
// defaults), so that zero means the same in every layer.
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
	// instance fan-out. Zero means fanout.DefaultMaxConcurrentPerRemote.
	MaxConcurrentPerRemote int
	// FailoverDelay is how long a remote with a later tier behind it may
	// take to answer a read before the next tier is asked. Zero means
	// fanout.DefaultFailoverDelay.
	FailoverDelay time.Duration
	// Dial are extra options for every upstream.Dial (tests inject clocks).
	Dial []grpcclient.Option
	// Now is the clock of project registrations' last use
	// (registration-ttl); nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
