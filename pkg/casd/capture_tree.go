package casd

import (
	"context"
	"os"
	"path/filepath"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// captureParallelism bounds the files one CaptureTree hashes and stores at
// once.
const captureParallelism = 8

// CaptureTree implements LocalCAS: each path (a directory) is stored in
// the local cache as REAPI Directory messages (entries sorted by name:
// regular files with their executable bit, symlinks verbatim,
// subdirectories; other file types skipped), every Directory and the
// Tree (root plus each distinct descendant) as blobs, before the call
// returns. The answer gives the Tree's and the root Directory's digests.
// node_properties "mtime" and "unix_mode" (less unix_mode_mask) are
// recorded on files and directories; move_files removes each source file
// once stored (directories stay). Failures are per path, as in
// CaptureFiles; with a storage-service the tree is uploaded as there.
func (d *Daemon) CaptureTree(ctx context.Context, req *localcaspb.CaptureTreeRequest) (*localcaspb.CaptureTreeResponse, error) {
	o, err := d.captureOptions(req)
	if err != nil {
		return nil, err
	}
	resp := &localcaspb.CaptureTreeResponse{Responses: make([]*localcaspb.CaptureTreeResponse_Response, len(req.GetPath()))}
	for i, p := range req.GetPath() {
		r := &localcaspb.CaptureTreeResponse_Response{Path: p}
		treeD, rootD, err := d.captureTreeAt(ctx, req.GetRoot(), p, o)
		if err == nil && !req.GetSkipUpload() && req.GetInstanceName() == "" && d.storage != nil {
			err = d.uploadTree(ctx, d.storage, rootD, treeD)
		}
		if err != nil {
			r.Status = status.Convert(err).Proto()
		} else {
			r.TreeDigest, r.RootDirectoryDigest = treeD.Proto(), rootD.Proto()
		}
		resp.Responses[i] = r
	}
	return resp, nil
}

// captureTreeAt captures the directory path (under root) and returns the
// digests of its Tree and root Directory.
func (d *Daemon) captureTreeAt(ctx context.Context, root, path string, o captureOptions) (treeD, rootD digest.Digest, err error) {
	full, err := resolve(root, path)
	if err != nil {
		return treeD, rootD, err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return treeD, rootD, fsError("stat", err)
	}
	if !fi.IsDir() {
		return treeD, rootD, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): %s is not a directory", full)
	}
	var pending []pendingFile
	top, err := scanDir(full, fi, o, &pending)
	if err != nil {
		return treeD, rootD, err
	}
	if err := d.captureFiles(ctx, pending, o); err != nil {
		return treeD, rootD, err
	}
	var children []*repb.Directory
	if rootD, err = d.storeDirs(ctx, top, digest.NewSet(), &children); err != nil {
		return treeD, rootD, err
	}
	treeD, err = d.putMessage(ctx, &repb.Tree{Root: top.dir, Children: children})
	return treeD, rootD, err
}

// scannedDir is a Directory read from disk whose file digests and
// subdirectory digests are filled in later.
type scannedDir struct {
	dir  *repb.Directory
	subs []*scannedDir // parallel to dir.Directories
}

// pendingFile is a regular file found by scanDir, to be captured into
// node.
type pendingFile struct {
	node *repb.FileNode
	path string
	info os.FileInfo
}

// scanDir reads dir (with info fi) recursively into Directory skeletons;
// regular files are appended to pending.
func scanDir(dir string, fi os.FileInfo, o captureOptions, pending *[]pendingFile) (*scannedDir, error) {
	entries, err := os.ReadDir(dir) // sorted by name, as REAPI requires
	if err != nil {
		return nil, fsError("read directory", err)
	}
	s := &scannedDir{dir: &repb.Directory{NodeProperties: o.props.Of(fi)}}
	for _, e := range entries {
		if err := s.addEntry(filepath.Join(dir, e.Name()), e, o, pending); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// addEntry adds one directory entry to s.
func (s *scannedDir) addEntry(p string, e os.DirEntry, o captureOptions, pending *[]pendingFile) error {
	t := e.Type()
	if !t.IsDir() && !t.IsRegular() && t&os.ModeSymlink == 0 {
		return nil // sockets, devices, FIFOs
	}
	info, err := e.Info()
	if err != nil {
		return fsError("stat", err)
	}
	switch {
	case t.IsDir():
		sub, err := scanDir(p, info, o, pending)
		if err != nil {
			return err
		}
		s.dir.Directories = append(s.dir.Directories, &repb.DirectoryNode{Name: e.Name()})
		s.subs = append(s.subs, sub)
	case t.IsRegular():
		node := &repb.FileNode{Name: e.Name()}
		s.dir.Files = append(s.dir.Files, node)
		*pending = append(*pending, pendingFile{node, p, info})
	default:
		target, err := os.Readlink(p)
		if err != nil {
			return fsError("read symlink", err)
		}
		s.dir.Symlinks = append(s.dir.Symlinks, &repb.SymlinkNode{Name: e.Name(), Target: target})
	}
	return nil
}

// captureFiles stores every pending file and fills in its node: all are
// hashed in parallel, one FindMissing asks which blobs are new (and marks
// the others used), and only those are stored, each distinct blob once.
func (d *Daemon) captureFiles(ctx context.Context, pending []pendingFile, o captureOptions) error {
	digests := make([]digest.Digest, len(pending))
	var g errgroup.Group
	g.SetLimit(captureParallelism)
	for i, pf := range pending {
		g.Go(func() (err error) {
			digests[i], err = hashFile(pf.path)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	missing, err := d.store.FindMissing(ctx, digests)
	if err != nil {
		return err
	}
	if err := d.storeMissing(ctx, pending, digests, missing); err != nil {
		return err
	}
	for i, pf := range pending {
		n := fileNode(digests[i], pf.info, o)
		pf.node.Digest, pf.node.IsExecutable, pf.node.NodeProperties = n.Digest, n.IsExecutable, n.NodeProperties
		if o.move {
			if err := os.Remove(pf.path); err != nil {
				return fsError("remove (move_files)", err)
			}
		}
	}
	return nil
}

// storeMissing stores, in parallel, one file of pending for each digest
// of missing (digests is parallel to pending).
func (d *Daemon) storeMissing(ctx context.Context, pending []pendingFile, digests, missing []digest.Digest) error {
	want := digest.NewSet(missing...)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(captureParallelism)
	for i, pf := range pending {
		if !want.Has(digests[i]) {
			continue
		}
		delete(want, digests[i])
		g.Go(func() error { return d.storeFile(gctx, pf.path, digests[i]) })
	}
	return g.Wait()
}

// storeDirs stores the Directory of s and of every descendant, bottom-up,
// appends each distinct descendant to children once, and returns s's
// digest.
func (d *Daemon) storeDirs(ctx context.Context, s *scannedDir, seen digest.Set, children *[]*repb.Directory) (digest.Digest, error) {
	for i, sub := range s.subs {
		sd, err := d.storeDirs(ctx, sub, seen, children)
		if err != nil {
			return digest.Digest{}, err
		}
		s.dir.Directories[i].Digest = sd.Proto()
		if !seen.Has(sd) {
			seen.Add(sd)
			*children = append(*children, sub.dir)
		}
	}
	return d.putMessage(ctx, s.dir)
}

// putMessage stores m's deterministic encoding (fields in field-number
// order, as Python's protobuf writes them, so BuildStream's re-encoding
// of a Directory it parsed hashes to the same digest) and returns its
// digest.
func (d *Daemon) putMessage(ctx context.Context, m proto.Message) (digest.Digest, error) {
	dg, b, err := digest.OfMessage(m)
	if err != nil {
		return dg, status.Errorf(codes.Internal, "buildbox-casd (castd): encode %T: %v", m, err)
	}
	return dg, d.store.PutBytes(ctx, dg, b, store.PutHint{})
}
