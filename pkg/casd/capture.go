package casd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/nodeprops"
	"github.com/castd/castd/pkg/digest"
)

// captureOptions are the per-request settings of CaptureFiles and
// CaptureTree.
type captureOptions struct {
	props nodeprops.Set // node_properties, with unix_mode_mask as ModeMask
	move  bool          // move_files: remove the source files once stored
}

// captureRequest is what CaptureFilesRequest and CaptureTreeRequest share.
type captureRequest interface {
	GetInstanceName() string
	GetNodeProperties() []string
	GetUnixModeMask() *wrapperspb.UInt32Value
	GetMoveFiles() bool
	GetBypassLocalCache() bool
	GetSkipUpload() bool
}

// captureOptions checks req's instance and reads its options.
func (d *Daemon) captureOptions(req captureRequest) (captureOptions, error) {
	if _, err := d.instance(req.GetInstanceName()); err != nil {
		return captureOptions{}, err
	}
	return newCaptureOptions(req.GetNodeProperties(), req.GetUnixModeMask(), req.GetMoveFiles(), req.GetBypassLocalCache(), req.GetSkipUpload())
}

// newCaptureOptions reads the node properties asked for (others are
// ignored, as buildbox-casd does) and rejects bypass_local_cache with
// skip_upload, which the protocol says are exclusive. Both are about the
// storage-service upload: skip_upload is honoured by the capture RPCs
// (uploadCaptured); bypass_local_cache is not, blobs are always stored in
// the local cache (which is what BuildStream reads them from).
func newCaptureOptions(props []string, mask *wrapperspb.UInt32Value, move, bypass, skipUpload bool) (captureOptions, error) {
	if bypass && skipUpload {
		return captureOptions{}, status.Error(codes.InvalidArgument, "buildbox-casd (castd): bypass_local_cache and skip_upload are mutually exclusive")
	}
	o := captureOptions{props: nodeprops.Parse(props), move: move}
	o.props.ModeMask = mask.GetValue()
	return o, nil
}

// resolve joins path to root (when set) and refuses a path that leaves
// root lexically. Symlinks inside root are not resolved.
func resolve(root, path string) (string, error) {
	if root == "" {
		return path, nil
	}
	rel := filepath.Clean(strings.TrimPrefix(path, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): path %q leaves root %q", path, root)
	}
	return filepath.Join(root, rel), nil
}

// CaptureFiles implements LocalCAS: each path's content is stored in the
// local cache (verified, before the call returns) and answered with its
// digest, executable bit (the owner's) and the node properties asked for.
// With move_files the source file is removed once stored. A failure is
// that path's status (RESOURCE_EXHAUSTED when the cache is full, which
// BuildStream reports as "cache too full"); the call itself fails only
// for a bad request. With a storage-service (--cas-remote) each blob is
// also uploaded to it unless skip_upload; an upload failure is the path's
// status. Other remote instances: blobs stay local.
func (d *Daemon) CaptureFiles(ctx context.Context, req *localcaspb.CaptureFilesRequest) (*localcaspb.CaptureFilesResponse, error) {
	o, err := d.captureOptions(req)
	if err != nil {
		return nil, err
	}
	resp := &localcaspb.CaptureFilesResponse{Responses: make([]*localcaspb.CaptureFilesResponse_Response, len(req.GetPath()))}
	for i, p := range req.GetPath() {
		r := &localcaspb.CaptureFilesResponse_Response{Path: p}
		node, err := d.captureOne(ctx, req.GetRoot(), p, o)
		if err == nil {
			err = d.uploadCaptured(ctx, req.GetInstanceName(), req.GetSkipUpload(), []*repb.Digest{node.Digest})
		}
		if err != nil {
			r.Status = status.Convert(err).Proto()
		} else {
			r.Digest, r.IsExecutable, r.NodeProperties = node.Digest, node.IsExecutable, node.NodeProperties
		}
		resp.Responses[i] = r
	}
	return resp, nil
}

// captureOne captures the regular file at path (under root).
func (d *Daemon) captureOne(ctx context.Context, root, path string, o captureOptions) (*repb.FileNode, error) {
	full, err := resolve(root, path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return nil, fsError("stat", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): %s is not a regular file", full)
	}
	return d.captureFile(ctx, full, fi, o)
}

// captureFile hashes the file at path, stores it (Put reads it again only
// when the blob is new) and returns its FileNode without a name.
func (d *Daemon) captureFile(ctx context.Context, path string, fi os.FileInfo, o captureOptions) (*repb.FileNode, error) {
	dg, err := hashFile(path)
	if err != nil {
		return nil, err
	}
	if err := d.storeFile(ctx, path, dg); err != nil {
		return nil, err
	}
	if o.move {
		if err := os.Remove(path); err != nil {
			return nil, fsError("remove (move_files)", err)
		}
	}
	return fileNode(dg, fi, o), nil
}

// fileNode is the FileNode (without a name) of a file with digest dg and
// info fi: executable when its owner may execute it.
func fileNode(dg digest.Digest, fi os.FileInfo, o captureOptions) *repb.FileNode {
	return &repb.FileNode{Digest: dg.Proto(), IsExecutable: fi.Mode()&0o100 != 0, NodeProperties: o.props.Of(fi)}
}

// hashFile returns the digest of the file at path.
func hashFile(path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest.Digest{}, fsError("open", err)
	}
	defer f.Close()
	h := digest.NewHasher()
	n, err := io.Copy(h, f)
	if err != nil {
		return digest.Digest{}, fsError("read", err)
	}
	return digest.Digest{Hash: digest.HashString(h), Size: n}, nil
}

// storeFile stores the file at path as blob dg (verified by the store: a
// file changed since it was hashed is INVALID_ARGUMENT).
func (d *Daemon) storeFile(ctx context.Context, path string, dg digest.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return fsError("open", err)
	}
	defer f.Close()
	return d.store.Put(ctx, dg, f)
}

// fsError turns an error of the client's files into a status: a missing
// path is NOT_FOUND, a refused one PERMISSION_DENIED, anything else
// INTERNAL; the message keeps the path.
func fsError(op string, err error) error {
	code := codes.Internal
	switch {
	case os.IsNotExist(err):
		code = codes.NotFound
	case os.IsPermission(err):
		code = codes.PermissionDenied
	}
	return status.Errorf(code, "buildbox-casd (castd): %s: %v", op, err)
}
