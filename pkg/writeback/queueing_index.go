package writeback

import (
	"context"

	"github.com/castd/castd/pkg/asset"
)

// NewQueueingIndex is NewQueueingCAS for an instance's Remote Asset index:
// a successful Record (a client's Push) is queued for targets, content
// first. With no targets it returns base.
func NewQueueingIndex(base asset.Index, q *Queue, targets []Target) asset.Index {
	if len(targets) == 0 {
		return base
	}
	return &queueingIndex{Index: base, q: q, targets: targets}
}

type queueingIndex struct {
	asset.Index
	q       *Queue
	targets []Target
}

func (x *queueingIndex) Record(ctx context.Context, a asset.Asset, ref asset.Ref) error {
	if err := x.Index.Record(ctx, a, ref); err != nil {
		return err
	}
	return x.q.EnqueueAsset(ctx, a, ref, x.targets)
}
