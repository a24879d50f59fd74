package writeback

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// push performs batch against s and returns one result per entry: blobs
// first (one FindMissing for all of them), then action results.
func (q *Queue) push(ctx context.Context, s *Sink, batch []*Entry) []error {
	results := make([]error, len(batch))
	var blobs []int
	for i, e := range batch {
		if e.Kind == KindBlob {
			blobs = append(blobs, i)
		}
	}
	if len(blobs) > 0 {
		ds := make([]digest.Digest, len(blobs))
		for j, i := range blobs {
			ds[j] = batch[i].Digest
		}
		errs := q.pushBlobs(ctx, s, ds)
		for j, i := range blobs {
			results[i] = errs[j]
		}
	}
	refused := map[Role]bool{}
	for i := range batch {
		if role, _, ok := refusal(results[i]); ok {
			refused[role] = true
		}
	}
	for i, e := range batch {
		switch {
		case e.Kind == KindBlob:
		case refused[e.Kind.role()] || refused[RoleCAS]:
			// The role is about to be parked: one refusal is enough.
			results[i] = errSkipped
		case e.Kind == KindActionResult:
			results[i] = q.pushActionResult(ctx, s, e)
		case e.Kind == KindAsset:
			results[i] = q.pushAsset(ctx, s, e)
		default:
			results[i] = permanentError{fmt.Errorf("unknown entry kind %s", e.Kind)}
		}
		if role, _, ok := refusal(results[i]); ok {
			refused[role] = true
		}
	}
	return results
}

// errSkipped is the result of an entry not attempted because the remote
// refused its role for good earlier in the same batch; finish leaves it
// queued (and parked with the role).
var errSkipped = errors.New("write-back: skipped, the remote refused this role")

// pushBlobs uploads those of ds the remote lacks, Parallelism at a time,
// and returns one result per digest.
func (q *Queue) pushBlobs(ctx context.Context, s *Sink, ds []digest.Digest) []error {
	errs := make([]error, len(ds))
	if len(ds) == 0 {
		return errs
	}
	missing, err := s.CAS.FindMissing(ctx, ds)
	if err != nil {
		err = fromRemote(RoleCAS, err)
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	lacks := digest.NewSet(missing...)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(q.opts.Parallelism)
	for i, d := range ds {
		if !lacks.Has(d) {
			continue
		}
		g.Go(func() error {
			errs[i] = q.copyBlob(gctx, s, d)
			return nil
		})
	}
	_ = g.Wait()
	return errs
}

// copyBlob streams d from the local store to the remote. A blob no longer
// stored locally (evicted) can never be pushed: a permanent error.
func (q *Queue) copyBlob(ctx context.Context, s *Sink, d digest.Digest) error {
	rc, err := q.local.Get(ctx, d, 0)
	if status.Code(err) == codes.NotFound {
		return permanentError{fmt.Errorf("blob %s is no longer in the local store: %w", d, err)}
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	return fromRemote(RoleCAS, s.CAS.Put(ctx, d, rc))
}

// pushActionResult pushes every blob the local result of e references that
// the remote lacks, then the result itself.
func (q *Queue) pushActionResult(ctx context.Context, s *Sink, e *Entry) error {
	if s.ActionCache == nil {
		return permanentError{fmt.Errorf("remote %s serves no action cache", e.Remote)}
	}
	ar, err := q.localAC(e.Instance).GetActionResult(ctx, e.Digest)
	if status.Code(err) == codes.NotFound {
		return permanentError{fmt.Errorf("action result %s is no longer stored locally: %w", e.Digest, err)}
	}
	if err != nil {
		return err
	}
	refs, err := references(ctx, q.local, e.Digest.Func, ar)
	if err != nil {
		return err
	}
	for _, err := range q.pushBlobs(ctx, s, refs) {
		if err != nil {
			return err
		}
	}
	return fromRemote(RoleActionCache, s.ActionCache.UpdateActionResult(ctx, e.Digest, ar))
}
