package store

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
)

// NewCompletenessCheckingActionCache wraps ac so that GetActionResult
// answers NOT_FOUND unless every blob the result references is in cas:
// output files, stdout and stderr, each output directory's Tree blob and
// every file in every Directory of that Tree. Use it in front of any action
// cache whose results a client will act on. Cost per hit: one Get per output
// directory (the Tree must be read) and one FindMissing for all digests,
// which also marks them used so LRU eviction removes them last.
// UpdateActionResult passes through. Safe for concurrent use.
func NewCompletenessCheckingActionCache(ac ActionCache, cas CAS) ActionCache {
	return &completenessCheckingActionCache{ActionCache: ac, cas: cas}
}

type completenessCheckingActionCache struct {
	ActionCache
	cas CAS
}

func (c *completenessCheckingActionCache) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	ar, err := c.ActionCache.GetActionResult(ctx, action)
	if err != nil {
		return nil, err
	}
	refs, err := c.references(ctx, ar)
	if err != nil {
		return nil, incomplete(action, err)
	}
	missing, err := c.cas.FindMissing(ctx, refs)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, status.Errorf(codes.NotFound, "action result %s is incomplete: %d referenced blobs are missing, e.g. %s", action, len(missing), missing[0])
	}
	return ar, nil
}

// references lists every blob ar depends on, reading output Trees from cas.
func (c *completenessCheckingActionCache) references(ctx context.Context, ar *repb.ActionResult) ([]digest.Digest, error) {
	var refs []digest.Digest
	add := func(pd *repb.Digest) error {
		d, err := digest.FromProto(pd)
		refs = append(refs, d)
		return err
	}
	for _, f := range ar.GetOutputFiles() {
		if err := add(f.GetDigest()); err != nil {
			return nil, err
		}
	}
	for _, pd := range []*repb.Digest{ar.GetStdoutDigest(), ar.GetStderrDigest()} {
		if pd != nil {
			if err := add(pd); err != nil {
				return nil, err
			}
		}
	}
	for _, od := range ar.GetOutputDirectories() {
		if err := add(od.GetTreeDigest()); err != nil {
			return nil, err
		}
		files, err := c.treeFiles(ctx, refs[len(refs)-1])
		if err != nil {
			return nil, err
		}
		refs = append(refs, files...)
	}
	return refs, nil
}

// treeFiles reads a Tree blob and returns the digests of all its files.
func (c *completenessCheckingActionCache) treeFiles(ctx context.Context, td digest.Digest) ([]digest.Digest, error) {
	rc, err := c.cas.Get(ctx, td, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	tree := &repb.Tree{}
	if err := proto.Unmarshal(b, tree); err != nil {
		return nil, status.Errorf(codes.NotFound, "tree %s does not parse: %v", td, err)
	}
	var files []digest.Digest
	for _, dir := range append([]*repb.Directory{tree.GetRoot()}, tree.GetChildren()...) {
		for _, f := range dir.GetFiles() {
			d, err := digest.FromProto(f.GetDigest())
			if err != nil {
				return nil, err
			}
			files = append(files, d)
		}
	}
	return files, nil
}

// incomplete turns a failure to resolve the result's references into the
// answer: a missing or unreadable Tree, or a malformed digest in a stored
// result, means the entry cannot be used — a miss, so the client rebuilds
// and overwrites it. Other errors (a failing store) keep their code.
func incomplete(action digest.Digest, err error) error {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.DataLoss:
		return status.Errorf(codes.NotFound, "action result %s is incomplete: %v", action, status.Convert(err).Message())
	}
	return err
}
