package writeback

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// NewQueueingActionCache is NewQueueingCAS for an instance's action cache:
// a successful UpdateActionResult is queued for targets (the result is read
// back from base's local store at push time, with the blobs it references
// pushed first). With no targets it returns base.
func NewQueueingActionCache(base store.ActionCache, q *Queue, instance string, targets []Target) store.ActionCache {
	if len(targets) == 0 {
		return base
	}
	return &queueingAC{ActionCache: base, q: q, instance: instance, targets: targets}
}

type queueingAC struct {
	store.ActionCache
	q        *Queue
	instance string
	targets  []Target
}

func (a *queueingAC) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	if err := a.ActionCache.UpdateActionResult(ctx, action, result); err != nil {
		return err
	}
	return a.q.Enqueue(ctx, KindActionResult, action, a.instance, a.targets)
}
