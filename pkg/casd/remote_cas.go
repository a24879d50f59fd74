package casd

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// remoteCAS is the REAPI CAS of a remote instance on the daemon's socket:
// reads come from the local cache, else through the route (stored
// locally); FindMissing asks the remote itself, because BuildStream asks
// it to learn what it must upload there. Writes go to the local cache.
type remoteCAS struct {
	store.CAS           // the route's read fan-out
	remote    store.CAS // the route's remote alone
}

// FindMissing asks the remote which of ds it lacks.
func (c *remoteCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return c.remote.FindMissing(ctx, ds)
}

// CAS implements grpcservers.Backend: the local store for instance "",
// the remote CAS of an instance GetInstanceNameForRemotes handed out (the
// local store when it named no CAS remote), an error for any other name.
func (d *Daemon) CAS(_ context.Context, instance string) (store.CAS, error) {
	r, err := d.instance(instance)
	if err != nil || r == nil {
		return d.store, err
	}
	rt, err := d.routeOf(r)
	if err != nil {
		return nil, err
	}
	if rt.read == nil {
		return d.store, nil
	}
	return &remoteCAS{CAS: rt.read, remote: rt.remote}, nil
}

// UploadTree implements LocalCAS: every Directory and file blob of the
// tree under root_digest, which must be complete in the local cache, is
// uploaded through the instance's route (what the remote lacks). The
// local instance has nothing to upload to: UNIMPLEMENTED makes BuildStream
// walk the tree itself.
func (d *Daemon) UploadTree(ctx context.Context, req *localcaspb.UploadTreeRequest) (*localcaspb.UploadTreeResponse, error) {
	remote, err := d.instance(req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if remote == nil {
		return nil, status.Error(codes.Unimplemented, "buildbox-casd (castd): UploadTree to the local instance: there is no remote to upload to")
	}
	root, err := digest.FromProto(req.GetRootDigest())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): root_digest: %v", err)
	}
	if err := d.uploadTree(ctx, remote, root); err != nil {
		return nil, err
	}
	return &localcaspb.UploadTreeResponse{}, nil
}

// uploadTree uploads every Directory and file blob of the tree under
// root (complete in the local cache), and the extra blobs, through the
// route of remote: what the remote lacks. The first failure is returned.
func (d *Daemon) uploadTree(ctx context.Context, remote *remoteInstance, root digest.Digest, extra ...digest.Digest) error {
	rt, err := d.routeOf(remote)
	if err != nil {
		return err
	}
	t, err := readTree(ctx, d.store, root)
	if err != nil {
		return err
	}
	ds := protos(extra)
	for dg := range t.dirs {
		ds = append(ds, dg.Proto())
	}
	for _, dg := range t.files.Sorted() {
		ds = append(ds, dg.Proto())
	}
	failed, err := d.uploadToRemote(ctx, rt, ds)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return status.ErrorProto(failed[0].status)
	}
	return nil
}

// protos returns ds as protos.
func protos(ds []digest.Digest) []*repb.Digest {
	out := make([]*repb.Digest, 0, len(ds))
	for _, dg := range ds {
		out = append(out, dg.Proto())
	}
	return out
}
