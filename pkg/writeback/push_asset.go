package writeback

import (
	"context"
	"fmt"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// maxTreeNodes bounds the Directory messages walked for one asset.
const maxTreeNodes = 1 << 20

// pushAsset pushes the content an association refers to that the remote
// lacks, then the association.
func (q *Queue) pushAsset(ctx context.Context, s *Sink, e *Entry) error {
	if s.Assets == nil {
		return permanentError{fmt.Errorf("remote %s serves no Remote Asset API", e.Remote)}
	}
	if e.Asset == nil {
		return permanentError{fmt.Errorf("asset entry for %s has no association", e.Digest)}
	}
	a, ref := e.Asset.restore(e)
	content := []digest.Digest{e.Digest}
	if a.Kind == asset.Directory {
		var err error
		if content, err = treeBlobs(ctx, q.local, e.Digest); err != nil {
			return err
		}
	}
	for _, err := range q.pushBlobs(ctx, s, content) {
		if err != nil {
			return err
		}
	}
	return fromRemote(RoleAsset, s.Assets.Record(ctx, a, ref))
}

// treeBlobs lists the Directory blobs of the tree rooted at root and the
// files they hold, reading the Directories from local; every digest of the
// tree is of root's function.
func treeBlobs(ctx context.Context, local store.CAS, root digest.Digest) ([]digest.Digest, error) {
	seen := digest.NewSet()
	todo := []digest.Digest{root}
	for len(todo) > 0 {
		d := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen.Has(d) {
			continue
		}
		if seen.Add(d); len(seen) > maxTreeNodes {
			return nil, permanentError{fmt.Errorf("tree %s has more than %d nodes", root, maxTreeNodes)}
		}
		dir, err := readDirectory(ctx, local, d)
		if err != nil {
			return nil, err
		}
		for _, f := range dir.GetFiles() {
			fd, err := digest.FromProtoIn(root.Func, f.GetDigest())
			if err != nil {
				return nil, permanentError{err}
			}
			seen.Add(fd)
		}
		for _, sub := range dir.GetDirectories() {
			sd, err := digest.FromProtoIn(root.Func, sub.GetDigest())
			if err != nil {
				return nil, permanentError{err}
			}
			todo = append(todo, sd)
		}
	}
	return seen.Sorted(), nil
}

func readDirectory(ctx context.Context, local store.CAS, d digest.Digest) (*repb.Directory, error) {
	if d.Size > maxTreeBytes {
		return nil, permanentError{fmt.Errorf("directory %s is larger than %d bytes", d, maxTreeBytes)}
	}
	dir := &repb.Directory{}
	err := store.ReadMessage(ctx, local, d, dir)
	switch status.Code(err) {
	case codes.OK:
		return dir, nil
	case codes.NotFound, codes.InvalidArgument, codes.DataLoss:
		return nil, permanentError{fmt.Errorf("directory %s cannot be pushed: %w", d, err)}
	}
	return nil, err
}
