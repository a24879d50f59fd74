package casd

import (
	"context"

	rapb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// assetServer answers Remote Asset on the daemon's socket. BuildStream
// sends its artifact and source refs there for a remote instance; they go
// through the instance's route (the castd daemon, whose asset index and
// policy apply, else BuildStream's Remote Asset remote). The local
// instance keeps no asset index: every fetch is a miss (NOT_FOUND:
// BuildStream then builds or fetches the source itself) and every push is
// refused. BuildStream's start-up probes carry no URI; INVALID_ARGUMENT is
// the answer it expects from a healthy server. A probe on a remote
// instance goes to the remote (or the castd daemon) like any request, as
// buildbox-casd forwards it: a remote that is down answers UNAVAILABLE,
// and BuildStream leaves it out of the session instead of waiting on it
// for every artifact.
type assetServer struct {
	rapb.UnimplementedFetchServer
	rapb.UnimplementedPushServer
	d *Daemon
}

// registerAsset registers the Remote Asset Fetch and Push services of d.
func registerAsset(s *grpc.Server, d *Daemon) {
	a := &assetServer{d: d}
	rapb.RegisterFetchServer(s, a)
	rapb.RegisterPushServer(s, a)
}

// errNoURI answers a request without URIs on the local instance.
var errNoURI = status.Error(codes.InvalidArgument, "buildbox-casd (castd): uris: at least one URI is required")

// check resolves the instance; it returns the instance's route, nil for
// the local instance, which refuses a request without URIs.
func (a *assetServer) check(instance string, uris []string) (*route, error) {
	r, err := a.d.instance(instance)
	if err != nil {
		return nil, err
	}
	if r == nil || r.storage != nil { // the storage-service is a CAS only
		if len(uris) == 0 {
			return nil, errNoURI
		}
		return nil, nil
	}
	rt, err := a.d.routeOf(r)
	if err != nil {
		return nil, err
	}
	if rt.assets == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "buildbox-casd (castd): instance %q names no Remote Asset remote (remotes:%s)", instance, describe(r.req))
	}
	return rt, nil
}

// miss is the NOT_FOUND of every fetch on the local instance.
func miss(uris []string) error {
	return status.Errorf(codes.NotFound, "buildbox-casd (castd): %s is not cached (the local instance keeps no asset index)", uris[0])
}

// FetchBlob implements the Remote Asset Fetch service through the
// instance's route.
func (a *assetServer) FetchBlob(ctx context.Context, req *rapb.FetchBlobRequest) (*rapb.FetchBlobResponse, error) {
	rt, err := a.check(req.GetInstanceName(), req.GetUris())
	if err != nil {
		return nil, err
	}
	if rt == nil {
		return nil, miss(req.GetUris())
	}
	resp, err := rt.assets.FetchBlob(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// FetchDirectory implements the Remote Asset Fetch service through the
// instance's route.
func (a *assetServer) FetchDirectory(ctx context.Context, req *rapb.FetchDirectoryRequest) (*rapb.FetchDirectoryResponse, error) {
	rt, err := a.check(req.GetInstanceName(), req.GetUris())
	if err != nil {
		return nil, err
	}
	if rt == nil {
		return nil, miss(req.GetUris())
	}
	resp, err := rt.assets.FetchDirectory(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// PushBlob implements the Remote Asset Push service through the
// instance's route.
func (a *assetServer) PushBlob(ctx context.Context, req *rapb.PushBlobRequest) (*rapb.PushBlobResponse, error) {
	rt, err := a.pushRoute(req.GetInstanceName(), req.GetUris())
	if err != nil {
		return nil, err
	}
	if err := rt.assets.PushBlob(ctx, req); err != nil {
		return nil, err
	}
	return &rapb.PushBlobResponse{}, nil
}

// PushDirectory implements the Remote Asset Push service through the
// instance's route.
func (a *assetServer) PushDirectory(ctx context.Context, req *rapb.PushDirectoryRequest) (*rapb.PushDirectoryResponse, error) {
	rt, err := a.pushRoute(req.GetInstanceName(), req.GetUris())
	if err != nil {
		return nil, err
	}
	if err := rt.assets.PushDirectory(ctx, req); err != nil {
		return nil, err
	}
	return &rapb.PushDirectoryResponse{}, nil
}

// pushRoute is check for a push: the local instance keeps no asset index,
// and a read_only remote takes no pushes (FAILED_PRECONDITION).
func (a *assetServer) pushRoute(instance string, uris []string) (*route, error) {
	rt, err := a.check(instance, uris)
	if err != nil {
		return nil, err
	}
	if rt == nil {
		return nil, status.Error(codes.FailedPrecondition, "buildbox-casd (castd): the local instance keeps no asset index; push to a remote instance")
	}
	if !rt.assetPushOK {
		return nil, status.Errorf(codes.FailedPrecondition, "buildbox-casd (castd): pushing %q: %s is read-only (BuildStream's remote has push disabled)", uris, rt.via)
	}
	return rt, nil
}
