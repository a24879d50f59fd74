package casd

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// stageParallelism bounds the files one StageTree places at once.
const stageParallelism = 8

// StageTree implements LocalCAS: the first request's tree is staged at its
// path (an empty or new directory) or in a fresh directory under
// <cachedir>/cas/staging, and the path is sent back. The tree stays until
// the client sends a second request (BuildStream sends an empty one) or
// ends the stream; then it is removed and, after a second request, an
// empty response says so. Files are hard links to the blob files
// (read-only, shared with the cache), except executables and files with
// an mtime property, which are copies; the whole tree must be in the
// local cache (FAILED_PRECONDITION listing what is missing otherwise).
func (d *Daemon) StageTree(stream localcaspb.LocalContentAddressableStorage_StageTreeServer) error {
	req, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := d.stage(stream.Context(), req)
	if err != nil {
		return err
	}
	defer d.unstage(t)
	if err := stream.Send(&localcaspb.StageTreeResponse{Path: t.path}); err != nil {
		return err
	}
	next := make(chan error, 1)
	go func() { _, err := stream.Recv(); next <- err }() // ends with the stream at the latest
	select {
	case err := <-next:
		if err != nil {
			return nil // the stream ended: clean up (deferred) without an answer
		}
	case <-d.stopping:
		return status.Error(codes.Unavailable, "buildbox-casd (castd) is stopping; the staged tree was removed")
	}
	d.unstage(t)
	return stream.Send(&localcaspb.StageTreeResponse{})
}

// stagedTree is a tree StageTree placed on disk.
type stagedTree struct {
	path    string
	created bool // the directory itself is ours to remove
}

// remove deletes the staged files (and the directory when StageTree made
// it), logging what it cannot remove.
func (t *stagedTree) remove(log *slog.Logger) {
	err := removeTree(t.path, t.created)
	if err != nil {
		log.Warn("buildbox-casd (castd): removing a staged tree", "path", t.path, "err", err)
	}
}

// stage checks the request, places the tree and registers it for Close.
func (d *Daemon) stage(ctx context.Context, req *localcaspb.StageTreeRequest) (*stagedTree, error) {
	if _, err := d.instance(req.GetInstanceName()); err != nil {
		return nil, err
	}
	if err := checkStageRequest(req); err != nil {
		return nil, err
	}
	root, err := digest.FromProto(req.GetRootDigest())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): root_digest: %v", err)
	}
	tr, err := readTree(ctx, d.store, root)
	if err != nil {
		return nil, err
	}
	if missing, err := d.store.FindMissing(ctx, tr.files.Sorted()); err != nil || len(missing) > 0 {
		return nil, errors.Join(err, missingError(missing))
	}
	t, err := d.stageDir(req.GetPath())
	if err != nil {
		return nil, err
	}
	if err := d.place(ctx, tr, root, t.path); err != nil {
		t.remove(d.log)
		return nil, err
	}
	d.mu.Lock()
	d.staged[t] = struct{}{}
	d.mu.Unlock()
	return t, nil
}

// missingError is FAILED_PRECONDITION naming the missing blobs, or nil.
func missingError(missing []digest.Digest) error {
	if len(missing) == 0 {
		return nil
	}
	return store.MissingBlobsError("the local cache (castd as buildbox-casd does not fetch from remotes yet)", missing)
}

// checkStageRequest refuses what castd does not offer: FUSE staging, a
// REAPI socket inside the tree and commands run before unstaging.
func checkStageRequest(req *localcaspb.StageTreeRequest) error {
	switch {
	case req.GetStagingMode() == localcaspb.StageTreeRequest_FUSE:
		return status.Error(codes.InvalidArgument, "buildbox-casd (castd): staging_mode FUSE is not supported; use COPY_OR_LINK")
	case req.GetRemoteApisSocketPath() != "":
		return status.Error(codes.InvalidArgument, "buildbox-casd (castd): remote_apis_socket_path is not supported")
	case len(req.GetPreUnstageCommands()) > 0:
		return status.Error(codes.InvalidArgument, "buildbox-casd (castd): pre_unstage_commands are not supported")
	}
	return nil
}

// stageDir prepares the directory to stage into: path when given (it must
// be empty or not exist), else a new one under <cachedir>/cas/staging, on
// the cache's filesystem so that files can be hard links.
func (d *Daemon) stageDir(path string) (*stagedTree, error) {
	if path == "" {
		base := filepath.Join(d.cacheDir, "cas", "staging")
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, fsError("create staging directory", err)
		}
		dir, err := os.MkdirTemp(base, "stage-")
		if err != nil {
			return nil, fsError("create staging directory", err)
		}
		return &stagedTree{path: dir, created: true}, nil
	}
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fsError("create "+path, err)
		}
		return &stagedTree{path: path, created: true}, nil
	}
	if err != nil {
		return nil, fsError("read "+path, err)
	}
	if len(entries) > 0 {
		return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): path %s is not empty", path)
	}
	return &stagedTree{path: path}, nil
}

// unstage removes t unless it is already gone.
func (d *Daemon) unstage(t *stagedTree) {
	d.mu.Lock()
	_, live := d.staged[t]
	delete(d.staged, t)
	d.mu.Unlock()
	if live {
		t.remove(d.log)
	}
}

// place writes the Directory dg of tr at dst (which exists): directories
// first, then files in parallel, then symlinks.
func (d *Daemon) place(ctx context.Context, tr *tree, dg digest.Digest, dst string) error {
	var files []stageFile
	if err := planDir(tr, dg, dst, &files); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(stageParallelism)
	for _, f := range files {
		g.Go(func() error { return d.placeFile(gctx, f) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return symlinkAll(tr, dg, dst)
}

// stageFile is one file to place.
type stageFile struct {
	dst  string
	node *repb.FileNode
}

// planDir creates the directories under dst and lists the files to place.
// Names are checked to be single path components.
func planDir(tr *tree, dg digest.Digest, dst string, files *[]stageFile) error {
	dir := tr.dirs[dg]
	for _, f := range dir.GetFiles() {
		if err := checkName(f.GetName()); err != nil {
			return err
		}
		*files = append(*files, stageFile{filepath.Join(dst, f.GetName()), f})
	}
	for _, sub := range dir.GetDirectories() {
		if err := checkName(sub.GetName()); err != nil {
			return err
		}
		p := filepath.Join(dst, sub.GetName())
		if err := os.Mkdir(p, 0o755); err != nil {
			return fsError("stage directory", err)
		}
		sd, _ := digest.FromProto(sub.GetDigest()) // checked by readTree
		if err := planDir(tr, sd, p, files); err != nil {
			return err
		}
	}
	return nil
}

// symlinkAll creates the symlinks of Directory dg and its descendants
// under dst, after the files, so that no file is written through one.
func symlinkAll(tr *tree, dg digest.Digest, dst string) error {
	dir := tr.dirs[dg]
	for _, s := range dir.GetSymlinks() {
		if err := checkName(s.GetName()); err != nil {
			return err
		}
		if err := os.Symlink(s.GetTarget(), filepath.Join(dst, s.GetName())); err != nil {
			return fsError("stage symlink", err)
		}
	}
	for _, sub := range dir.GetDirectories() {
		sd, _ := digest.FromProto(sub.GetDigest())
		if err := symlinkAll(tr, sd, filepath.Join(dst, sub.GetName())); err != nil {
			return err
		}
	}
	return nil
}

// checkName refuses names that are not one path component.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): %q is not a single path component", name)
	}
	return nil
}
