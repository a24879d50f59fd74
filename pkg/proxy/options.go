package proxy

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// Options are what New's caller injects: metrics, logs, test clocks. The
// zero value is usable. Tuning comes from the configuration (cache.remotes,
// cache.push; see tuning.go), not from here.
type Options struct {
	// Registerer receives the upstream, fan-out and write-back metrics;
	// nil registers none.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Dial are extra options for every grpcclient.Dial, applied after the
	// configured ones (tests inject clocks and breakers).
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
	return o
}
