package writeback

import (
	"context"
	"fmt"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// maxTreeBytes bounds the Tree messages read into memory to list their
// files.
const maxTreeBytes = 64 << 20

// references returns every blob ar needs on a remote before the remote
// may hold ar: output files, stdout/stderr, output directory trees and the
// files inside them. Trees are read from local. A reference missing
// locally is a permanent error: the result cannot be pushed complete.
func references(ctx context.Context, local store.CAS, ar *repb.ActionResult) ([]digest.Digest, error) {
	set := digest.NewSet()
	add := func(pd *repb.Digest) error {
		if pd == nil {
			return nil
		}
		d, err := digest.FromProto(pd)
		if err != nil {
			return permanentError{fmt.Errorf("action result references a bad digest: %w", err)}
		}
		set.Add(d)
		return nil
	}
	for _, f := range ar.GetOutputFiles() {
		if err := add(f.GetDigest()); err != nil {
			return nil, err
		}
	}
	for _, pd := range []*repb.Digest{ar.GetStdoutDigest(), ar.GetStderrDigest()} {
		if err := add(pd); err != nil {
			return nil, err
		}
	}
	for _, dir := range ar.GetOutputDirectories() {
		if err := add(dir.GetTreeDigest()); err != nil {
			return nil, err
		}
		if err := treeFiles(ctx, local, dir.GetTreeDigest(), add); err != nil {
			return nil, err
		}
	}
	return set.Sorted(), nil
}

// treeFiles calls add for every file digest in the Tree blob td.
func treeFiles(ctx context.Context, local store.CAS, td *repb.Digest, add func(*repb.Digest) error) error {
	d, err := digest.FromProto(td)
	if err != nil {
		return permanentError{err}
	}
	if d.Size > maxTreeBytes {
		return permanentError{fmt.Errorf("tree %s is larger than %d bytes", d, maxTreeBytes)}
	}
	rc, err := local.Get(ctx, d, 0)
	if status.Code(err) == codes.NotFound {
		return permanentError{fmt.Errorf("tree %s is no longer stored locally", d)}
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	var tree repb.Tree
	if err := proto.Unmarshal(data, &tree); err != nil {
		return permanentError{fmt.Errorf("tree %s: %v", d, err)}
	}
	for _, dir := range append([]*repb.Directory{tree.GetRoot()}, tree.GetChildren()...) {
		for _, f := range dir.GetFiles() {
			if err := add(f.GetDigest()); err != nil {
				return err
			}
		}
	}
	return nil
}
