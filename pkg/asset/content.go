package asset

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// maxFindMissing is the most digests sent in one FindMissing call.
const maxFindMissing = 10000

// maxDirectorySize bounds a Directory message read into memory.
const maxDirectorySize = 64 << 20

// missingContent returns the digests of the content under root that cas
// lacks: root itself for a blob; for a directory every Directory of the tree
// and every file blob in it. The tree is walked level by level: one
// FindMissing per level for the Directories, a Get for each present one, and
// batched FindMissing calls for all files at the end (which also marks them
// used, so eviction takes them last). Subtrees under a missing Directory
// cannot be seen and are not listed. Every digest in the tree is in root's
// function. A Directory blob that does not parse is FAILED_PRECONDITION.
func missingContent(ctx context.Context, cas store.CAS, kind Kind, root digest.Digest) ([]digest.Digest, error) {
	if kind == Blob {
		return cas.FindMissing(ctx, []digest.Digest{root})
	}
	var missing, files []digest.Digest
	seen, seenFiles := digest.NewSet(root), digest.NewSet()
	for level := []digest.Digest{root}; len(level) > 0; {
		gone, err := cas.FindMissing(ctx, level)
		if err != nil {
			return nil, err
		}
		missing = append(missing, gone...)
		absent := digest.NewSet(gone...)
		var next []digest.Digest
		for _, d := range level {
			if absent.Has(d) {
				continue
			}
			dir, err := readDirectory(ctx, cas, d)
			if status.Code(err) == codes.NotFound {
				missing = append(missing, d) // evicted since FindMissing
				continue
			}
			if err != nil {
				return nil, err
			}
			next, files, err = children(dir, d, seen, seenFiles, next, files)
			if err != nil {
				return nil, err
			}
		}
		level = next
	}
	for len(files) > 0 {
		n := min(len(files), maxFindMissing)
		gone, err := cas.FindMissing(ctx, files[:n])
		if err != nil {
			return nil, err
		}
		missing, files = append(missing, gone...), files[n:]
	}
	return missing, nil
}

// children appends dir's unseen subdirectories to dirs and unseen files to
// files, parsed in the function of at, dir's digest.
func children(dir *repb.Directory, at digest.Digest, seen, seenFiles digest.Set, dirs, files []digest.Digest) ([]digest.Digest, []digest.Digest, error) {
	for _, f := range dir.GetFiles() {
		d, err := digest.FromProtoIn(at.Func, f.GetDigest())
		if err != nil {
			return nil, nil, status.Errorf(codes.FailedPrecondition, "directory %s: file %q: %v", at, f.GetName(), status.Convert(err).Message())
		}
		if !seenFiles.Has(d) {
			seenFiles.Add(d)
			files = append(files, d)
		}
	}
	for _, sd := range dir.GetDirectories() {
		d, err := digest.FromProtoIn(at.Func, sd.GetDigest())
		if err != nil {
			return nil, nil, status.Errorf(codes.FailedPrecondition, "directory %s: subdirectory %q: %v", at, sd.GetName(), status.Convert(err).Message())
		}
		if !seen.Has(d) {
			seen.Add(d)
			dirs = append(dirs, d)
		}
	}
	return dirs, files, nil
}

// readDirectory reads and parses the Directory message stored under d.
func readDirectory(ctx context.Context, cas store.CAS, d digest.Digest) (*repb.Directory, error) {
	if d.Size > maxDirectorySize {
		return nil, status.Errorf(codes.FailedPrecondition, "directory %s is larger than %d bytes", d, maxDirectorySize)
	}
	dir := &repb.Directory{}
	err := store.ReadMessage(ctx, cas, d, dir)
	if status.Code(err) == codes.InvalidArgument { // the pushed reference is wrong, not this request
		return nil, status.Errorf(codes.FailedPrecondition, "%s", status.Convert(err).Message())
	}
	return dir, err
}
