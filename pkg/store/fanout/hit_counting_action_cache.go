package fanout

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// NewHitCountingActionCache counts each result local serves as a local
// hit of opts.Instance in the fan-out's metrics and Counters, under the
// lookup's kind (see WithLookupKind). Misses are not counted: use it for
// a local-only lookup whose miss is then asked of the fan-out, which
// counts the outcome (Execute's lookup does that). Writes pass through.
// Cost: one counter update per hit. Safe for concurrent use if local is.
func NewHitCountingActionCache(local store.ActionCache, opts ACOptions) store.ActionCache {
	return &hitCountingActionCache{ActionCache: local, m: newMetrics(opts.Registerer, opts.Instance, KindActionCache, opts.Counters)}
}

type hitCountingActionCache struct {
	store.ActionCache
	m *metrics
}

func (c *hitCountingActionCache) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	ar, err := c.ActionCache.GetActionResult(ctx, action)
	if err == nil {
		c.m.forLookup(ctx).localHit(0)
	}
	return ar, err
}
