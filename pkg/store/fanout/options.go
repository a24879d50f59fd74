package fanout

import (
	"log/slog"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Tier is one upstream CAS in the pull order. Name labels errors, logs and
// metrics (e.g. the remote's HOST:PORT); Origin says where the remote was
// configured ("user", "user-project", "project", "cache",
// "remote-execution"), so hooks can tell project-recommended content apart.
type Tier struct {
	Name   string
	CAS    store.CAS
	Origin string
}

// ACTier is one upstream action cache in the pull order; Name and Origin as
// for Tier.
type ACTier struct {
	Name   string
	AC     store.ActionCache
	Origin string
}

// Options tunes NewCAS. The zero value is usable.
type Options struct {
	// FailoverDelay is how long a remote that has a later tier behind it
	// may take to answer a read (for a stream: to deliver its first
	// bytes) before it is cut off as stalled and the next tier asked; the
	// last tier has no such limit. Zero means defaults.FailoverDelay.
	FailoverDelay time.Duration
	// StreamStallDelay is how long a stream from a remote that has a later
	// tier behind it may go without delivering bytes before it is cut off
	// as stalled and continued, at the same offset, from the next tier.
	// Zero means defaults.StreamStallFactor × FailoverDelay.
	StreamStallDelay time.Duration
	// Clock drives the existence cache TTL. Nil means the wall clock.
	Clock clock.Clock
	// OnRemoteHit is called once a blob fetched from tier is stored locally,
	// once per fetch (concurrent Gets of one blob share a fetch).
	OnRemoteHit func(d digest.Digest, tier Tier)
	// Registerer receives the Prometheus metrics; nil registers nothing.
	// Several fan-outs may share one registry: their series are told
	// apart by Instance.
	Registerer prometheus.Registerer
	// Instance is the instance name the fan-out serves, the instance
	// label of its metrics ("" for the global user remotes).
	Instance string
	// Counters, if set, accumulates hits and misses for a Status RPC; it
	// may be shared by several fan-outs.
	Counters *Counters
	// Logger receives bad-data and skipped-remote reports; nil means
	// slog.Default().
	Logger *slog.Logger
}

// ACOptions tunes NewActionCache. The zero value is usable.
type ACOptions struct {
	// FailoverDelay is Options.FailoverDelay for action-cache lookups.
	FailoverDelay time.Duration
	// OnRemoteHit is called after a complete result from tier was served
	// and recorded locally.
	OnRemoteHit func(action digest.Digest, result *repb.ActionResult, tier ACTier)
	// Registerer receives the Prometheus metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Instance is the instance label of the metrics, as Options.Instance.
	Instance string
	// Counters, if set, accumulates hits and misses for a Status RPC.
	Counters *Counters
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.FailoverDelay <= 0 {
		o.FailoverDelay = defaults.FailoverDelay
	}
	if o.StreamStallDelay <= 0 {
		o.StreamStallDelay = defaults.StreamStallFactor * o.FailoverDelay
	}
	o.Clock = clock.OrReal(o.Clock)
	if o.Logger == nil {
		o.Logger = defaultLogger()
	}
	return o
}

func defaultLogger() *slog.Logger { return slog.Default() }
