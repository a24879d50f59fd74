package proxy

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/writeback"

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
	// BreakerFailures and BreakerCoolDown tune every remote's circuit
	// breakers (one per role); zero means the upstream defaults, negative
	// failures disable them.
	BreakerFailures int
	BreakerCoolDown time.Duration
	// Writeback tunes the push queue (its Registerer and Logger default to
	// the ones above).
	Writeback writeback.Options
	// Dial are extra options for every upstream.Dial (tests inject clocks).
	Dial []grpcclient.Option
	// Clock is the clock of project registrations' last use
	// (registration-ttl); nil means the wall clock.
	Clock clock.Clock
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Clock = clock.OrReal(o.Clock)
	if o.Writeback.Registerer == nil {
		o.Writeback.Registerer = o.Registerer
	}
	if o.Writeback.Logger == nil {
		o.Writeback.Logger = o.Logger
	}
	return o
}
