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

// MaxTreeBytes bounds the Tree blobs ReferencedBlobs reads into memory.
const MaxTreeBytes = 64 << 20

// ReferencedBlobs returns every blob an ActionResult depends on, each once
// (every digest in it is of fn, the function of its action digest)
// and sorted: output files, stdout and stderr, each output directory's Tree
// blob and every file in every Directory of that Tree. Trees are read from
// cas. It is the one definition of "complete" shared by the completeness
// check, the write-back queue and execution uploads.
//
// Errors are statuses: a malformed digest in ar or in a Tree is
// INVALID_ARGUMENT, a Tree missing from cas NOT_FOUND, a Tree that does not
// parse (or exceeds MaxTreeBytes) DATA_LOSS; other errors keep cas's code.
// Cost: one Get per output directory; no FindMissing.
func ReferencedBlobs(ctx context.Context, cas CAS, fn digest.Function, ar *repb.ActionResult) ([]digest.Digest, error) {
	refs := digest.NewSet()
	add := func(pd *repb.Digest) error {
		d, err := digest.FromProtoIn(fn, pd)
		if err == nil {
			refs.Add(d)
		}
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
		td, err := digest.FromProtoIn(fn, od.GetTreeDigest())
		if err != nil {
			return nil, err
		}
		refs.Add(td)
		tree, err := readTree(ctx, cas, td)
		if err != nil {
			return nil, err
		}
		for _, dir := range append([]*repb.Directory{tree.GetRoot()}, tree.GetChildren()...) {
			for _, f := range dir.GetFiles() {
				if err := add(f.GetDigest()); err != nil {
					return nil, err
				}
			}
		}
	}
	return refs.Sorted(), nil
}

// readTree reads and decodes the Tree blob td.
func readTree(ctx context.Context, cas CAS, td digest.Digest) (*repb.Tree, error) {
	if td.Size > MaxTreeBytes {
		return nil, status.Errorf(codes.DataLoss, "tree %s is larger than %d bytes", td, MaxTreeBytes)
	}
	rc, err := cas.Get(ctx, td, 0)
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
		return nil, status.Errorf(codes.DataLoss, "tree %s does not parse: %v", td, err)
	}
	return tree, nil
}
