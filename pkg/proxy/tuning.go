package proxy

import (
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/store/grpcclient"
	"github.com/castd/castd/pkg/writeback"
)

// The configuration's tuning keys (cache.remotes, cache.push) as the
// options of the layers this package builds. Each field is passed as the
// file gives it: zero means the layer's default (internal/defaults) and a
// negative value, where the file says off, switches the feature off. They
// are read once, by New: a reload that changes them takes effect on the
// next start.

// fanoutOptions is the CAS fan-out's share of cache.remotes.
func fanoutOptions(t policy.RemoteTuning) fanout.Options {
	return fanout.Options{
		FailoverDelay:    t.FailoverDelay,
		StreamStallDelay: t.StreamStallDelay,
	}
}

// acOptions is the action-cache fan-out's share of cache.remotes.
func acOptions(t policy.RemoteTuning) fanout.ACOptions {
	return fanout.ACOptions{FailoverDelay: t.FailoverDelay}
}

// assetOptions is the asset index fan-out's share of cache.remotes.
func assetOptions(t policy.RemoteTuning) asset.FanoutOptions {
	return asset.FanoutOptions{FailoverDelay: t.FailoverDelay}
}

// breakerOption is every remote client's breaker, from cache.remotes.
func breakerOption(t policy.RemoteTuning) grpcclient.Option {
	return grpcclient.WithBreaker(t.BreakerFailures, t.BreakerCoolDown)
}

// compressionOption is every remote client's compression, from
// cache.remotes.compression: off makes every transfer identity, auto (or
// unset) leaves the client's default, zstd to a remote that advertises it.
func compressionOption(t policy.RemoteTuning) grpcclient.Option {
	return grpcclient.WithCompression(t.Compression != policy.CompressionOff)
}

// writebackOptions is the push queue's tuning, from cache.push.
func writebackOptions(p policy.PushTuning) writeback.Options {
	return writeback.Options{MaxEntries: p.MaxPending, FullWait: p.FullWait, BackoffMin: p.BackoffMin, BackoffMax: p.BackoffMax,
		Batch: p.Batch, Parallelism: p.Parallelism}
}
