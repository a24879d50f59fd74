package execution

import (
	"context"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Limits of the input walk and of blob transfers between stores.
const (
	findMissingBatch = 10000
	walkParallelism  = 16
	copyParallelism  = 8
)

// actionBlobs returns every blob an action needs: the Action, its Command,
// and every Directory and file of its input root, reading the Directory
// messages from cas level by level; every digest is of the action digest's
// function. Directories missing from cas are one FAILED_PRECONDITION
// listing them.
func actionBlobs(ctx context.Context, cas store.CAS, j *job) ([]digest.Digest, error) {
	fn := j.digest.Func
	cd, _ := digest.FromProtoIn(fn, j.action.GetCommandDigest())
	root, _ := digest.FromProtoIn(fn, j.action.GetInputRootDigest())
	all := digest.NewSet(j.digest, cd, root)
	level := []digest.Digest{root}
	for len(level) > 0 {
		next, err := walkLevel(ctx, cas, fn, level, all)
		if err != nil {
			return nil, err
		}
		level = next
	}
	return all.Sorted(), nil
}

// walkLevel reads the Directories of one tree level in parallel, adds
// their files and subdirectories (digests of fn) to all, and returns the
// new subdirectories.
func walkLevel(ctx context.Context, cas store.CAS, fn digest.Function, level []digest.Digest, all digest.Set) ([]digest.Digest, error) {
	dirs := make([]*repb.Directory, len(level))
	var mu sync.Mutex
	var missing []digest.Digest
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(walkParallelism)
	for i, d := range level {
		g.Go(func() error {
			dirs[i] = &repb.Directory{}
			err := readMessage(gctx, cas, d, dirs[i])
			if status.Code(err) == codes.NotFound {
				mu.Lock()
				missing = append(missing, d)
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, store.MissingBlobsError("the CAS (input directories)", missing)
	}
	return addEntries(fn, dirs, all)
}

// addEntries adds the files and subdirectories of dirs, digests of fn, to
// all and returns the subdirectories not seen before.
func addEntries(fn digest.Function, dirs []*repb.Directory, all digest.Set) ([]digest.Digest, error) {
	var next []digest.Digest
	for _, dir := range dirs {
		for _, f := range dir.GetFiles() {
			d, err := digest.FromProtoIn(fn, f.GetDigest())
			if err != nil {
				return nil, grpcerr.InvalidArgument("input_root", "file %q: %s", f.GetName(), status.Convert(err).Message())
			}
			all.Add(d)
		}
		for _, sub := range dir.GetDirectories() {
			d, err := digest.FromProtoIn(fn, sub.GetDigest())
			if err != nil {
				return nil, grpcerr.InvalidArgument("input_root", "directory %q: %s", sub.GetName(), status.Convert(err).Message())
			}
			if !all.Has(d) {
				all.Add(d)
				next = append(next, d)
			}
		}
	}
	return next, nil
}

// copyMissing copies to dst those of ds that dst lacks (batched
// FindMissing), streaming each from src.
func copyMissing(ctx context.Context, src, dst store.CAS, ds []digest.Digest) error {
	var missing []digest.Digest
	for start := 0; start < len(ds); start += findMissingBatch {
		m, err := dst.FindMissing(ctx, ds[start:min(start+findMissingBatch, len(ds))])
		if err != nil {
			return err
		}
		missing = append(missing, m...)
	}
	return transfer(ctx, src, dst, missing)
}

// transfer streams every blob of ds from src into dst, a few at a time.
// Blobs src lacks are reported together as one FAILED_PRECONDITION.
func transfer(ctx context.Context, src, dst store.CAS, ds []digest.Digest) error {
	var mu sync.Mutex
	var absent []digest.Digest
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copyParallelism)
	for _, d := range ds {
		if d.IsEmpty() {
			continue
		}
		g.Go(func() error {
			rc, err := src.Get(gctx, d, 0)
			if status.Code(err) == codes.NotFound {
				mu.Lock()
				absent = append(absent, d)
				mu.Unlock()
				return nil
			}
			if err != nil {
				return err
			}
			defer rc.Close()
			return dst.Put(gctx, d, rc)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(absent) > 0 {
		return store.MissingBlobsError("the CAS", absent)
	}
	return nil
}

// fetchInputs copies j's inputs from the instance's CAS (which may read
// through to remotes) into the store the Runner reads.
func (s *Server) fetchInputs(ctx context.Context, j *job) error {
	ds, err := actionBlobs(ctx, j.plan.CAS, j)
	if err != nil {
		return err
	}
	return copyMissing(ctx, j.plan.CAS, j.plan.LocalCAS, ds)
}
