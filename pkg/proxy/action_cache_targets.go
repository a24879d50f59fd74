package proxy

import (
	"context"

	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/writeback"
)

// actionCacheTargets is targets for r's action-result pushes, with one
// difference: the remote-execution action-cache-service reads the blobs a
// result references from the storage-service (DESIGN §4, scenario 3). When
// those are different servers, the action-cache-service gets a push target
// of its own whose blobs go to the storage-service's CAS and whose result
// goes to the action-cache-service.
func (s *Set) actionCacheTargets(ctx context.Context, r *policy.Resolved) ([]writeback.Target, error) {
	var out []writeback.Target
	for _, rc := range r.PushActionCache {
		storage, split := executionStorage(r)
		if rc.Section != policy.BlockActionCacheService || !split || keyOf(storage) == keyOf(rc) {
			ts, err := s.targets(ctx, []policy.Remote{rc})
			if err != nil {
				return nil, err
			}
			out = append(out, ts...)
			continue
		}
		if !rc.Push || rc.Origin == policy.OriginProject {
			continue
		}
		acRem, err := s.pool.get(ctx, rc)
		if err != nil {
			return nil, err
		}
		stRem, err := s.pool.get(ctx, storage)
		if err != nil {
			return nil, err
		}
		name := acRem.name + " (blobs to " + stRem.name + ")"
		acRem.target.Store(true)
		stRem.target.Store(true)
		s.queue.Register(name, writeback.Sink{CAS: stRem.cas, ActionCache: acRem.ac})
		out = append(out, writeback.Target{Name: name, Origin: rc.Origin})
	}
	return out, nil
}
