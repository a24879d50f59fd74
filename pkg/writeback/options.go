package writeback

import (
	"log/slog"
	"time"

	"github.com/castd/castd/internal/clock"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/defaults"
)

// Options tunes Open. The zero value is usable.
type Options struct {
	// MaxEntries bounds the pending entries over all remotes; beyond it
	// Enqueue waits (back-pressure). Zero means defaults.PushMaxPending.
	MaxEntries int
	// FullWait is how long Enqueue waits for room before it fails with
	// RESOURCE_EXHAUSTED. Zero means defaults.PushFullWait.
	FullWait time.Duration
	// BackoffMin and BackoffMax bound the exponential retry delay of an
	// entry whose push failed. Zero means defaults.PushBackoffMin and
	// defaults.PushBackoffMax.
	BackoffMin, BackoffMax time.Duration
	// Batch is how many ready entries of one remote a worker takes at once
	// (one FindMissing call). Zero means defaults.PushBatch.
	Batch int
	// Parallelism bounds the uploads in flight to one remote. Zero means
	// defaults.PushParallelism.
	Parallelism int
	// Registerer receives the castd_writeback_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Clock times retries, the wait for room and the entries' times; nil
	// means the wall clock.
	Clock clock.Clock
}

func (o Options) withDefaults() Options {
	o.Clock = clock.OrReal(o.Clock)
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxEntries, defaults.PushMaxPending)
	def(&o.Batch, defaults.PushBatch)
	def(&o.Parallelism, defaults.PushParallelism)
	defDur(&o.FullWait, defaults.PushFullWait)
	defDur(&o.BackoffMin, defaults.PushBackoffMin)
	defDur(&o.BackoffMax, defaults.PushBackoffMax)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// backoff is the delay before the attempts-th retry: BackoffMin doubled
// per earlier failure, capped at BackoffMax.
func (o Options) backoff(attempts int) time.Duration {
	d := o.BackoffMin
	for i := 1; i < attempts && d < o.BackoffMax; i++ {
		d *= 2
	}
	return min(d, o.BackoffMax)
}
