package localexec

import (
	"context"
	"fmt"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// findMissingBatch is the most digests sent in one FindMissing call.
const findMissingBatch = 10000

// fetchParallelism bounds concurrent Directory fetches and file writes.
const fetchParallelism = 16

// inputTree is an input root whose Directory messages have all been fetched
// and whose file blobs are known to exist. Every digest in it is of
// root.Func.
type inputTree struct {
	root digest.Digest
	dirs map[digest.Digest]*repb.Directory
}

// fetchTree fetches every Directory below root, level by level, then checks
// with batched FindMissing calls that every file blob exists. Every digest
// below root is read as one of root's function. All missing blobs found are
// reported together in one FAILED_PRECONDITION.
func fetchTree(ctx context.Context, cas store.CAS, root digest.Digest) (*inputTree, error) {
	t := &inputTree{root: root, dirs: map[digest.Digest]*repb.Directory{}}
	var missing []digest.Digest
	files, seen := digest.NewSet(), digest.NewSet(root)
	level := []digest.Digest{root}
	for len(level) > 0 {
		fetched, notFound, err := fetchDirs(ctx, cas, level)
		if err != nil {
			return nil, err
		}
		missing = append(missing, notFound...)
		children := digest.NewSet()
		for d, dir := range fetched {
			t.dirs[d] = dir
			if err := collectChildren(root.Func, d, dir, files, children); err != nil {
				return nil, err
			}
		}
		level = children.Difference(seen).Sorted()
		for _, d := range level {
			seen.Add(d)
		}
	}
	fileMissing, err := findMissing(ctx, cas, files.Sorted())
	if err != nil {
		return nil, err
	}
	if missing = append(missing, fileMissing...); len(missing) > 0 {
		return nil, store.MissingBlobsError("the CAS (input tree)", missing)
	}
	return t, nil
}

// fetchDirs fetches ds in parallel, returning the decoded Directories and
// the digests that were NOT_FOUND.
func fetchDirs(ctx context.Context, cas store.CAS, ds []digest.Digest) (map[digest.Digest]*repb.Directory, []digest.Digest, error) {
	var mu sync.Mutex
	got := make(map[digest.Digest]*repb.Directory, len(ds))
	var notFound []digest.Digest
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallelism)
	for _, d := range ds {
		g.Go(func() error {
			dir := &repb.Directory{}
			err := store.ReadMessage(gctx, cas, d, dir)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status.Code(err) == codes.NotFound:
				notFound = append(notFound, d)
			case err != nil:
				return internalf(err, "input directory %s", d)
			default:
				got[d] = dir
			}
			return nil
		})
	}
	return got, notFound, g.Wait()
}

// collectChildren validates the digests in dir as digests of fn and adds
// its file digests to files and its subdirectory digests to dirs.
func collectChildren(fn digest.Function, at digest.Digest, dir *repb.Directory, files, dirs digest.Set) error {
	for i, f := range dir.GetFiles() {
		d, err := digest.FromProtoIn(fn, f.GetDigest())
		if err != nil {
			return grpcerr.InvalidArgument(fmt.Sprintf("directory blobs/%s: files[%d].digest", at, i), "%s", status.Convert(err).Message())
		}
		if !d.IsEmpty() {
			files.Add(d)
		}
	}
	for i, sub := range dir.GetDirectories() {
		d, err := digest.FromProtoIn(fn, sub.GetDigest())
		if err != nil {
			return grpcerr.InvalidArgument(fmt.Sprintf("directory blobs/%s: directories[%d].digest", at, i), "%s", status.Convert(err).Message())
		}
		dirs.Add(d)
	}
	return nil
}

// findMissing asks cas which of ds are missing, in batches of at most
// findMissingBatch digests.
func findMissing(ctx context.Context, cas store.CAS, ds []digest.Digest) ([]digest.Digest, error) {
	var missing []digest.Digest
	for start := 0; start < len(ds); start += findMissingBatch {
		end := min(start+findMissingBatch, len(ds))
		m, err := cas.FindMissing(ctx, ds[start:end])
		if err != nil {
			return nil, internalf(err, "find missing blobs")
		}
		missing = append(missing, m...)
	}
	return missing, nil
}
