package casd

import (
	"context"

	rapb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// assetServer answers Remote Asset on the daemon's socket. BuildStream
// sends its artifact and source refs there for a remote instance; castd
// as buildbox-casd keeps no asset index and does not contact remotes yet,
// so every fetch is a miss (NOT_FOUND: BuildStream then builds or fetches
// the source itself) and every push fails naming the remote. BuildStream's
// start-up probes carry no URI; INVALID_ARGUMENT is the answer it expects
// from a healthy server.
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

// check resolves the instance and refuses a request without URIs.
func (a *assetServer) check(instance string, uris []string) (*remoteInstance, error) {
	r, err := a.d.instance(instance)
	if err != nil {
		return nil, err
	}
	if len(uris) == 0 {
		return nil, status.Error(codes.InvalidArgument, "buildbox-casd (castd): uris: at least one URI is required")
	}
	return r, nil
}

// miss is the NOT_FOUND of every fetch.
func (a *assetServer) miss(r *remoteInstance, uris []string) error {
	where := "castd as buildbox-casd keeps no asset index"
	if r != nil {
		where += " and does not contact remote " + r.url() + " yet"
	}
	return status.Errorf(codes.NotFound, "buildbox-casd (castd): %s is not cached (%s)", uris[0], where)
}

// FetchBlob implements the Remote Asset Fetch service: always a miss.
func (a *assetServer) FetchBlob(_ context.Context, req *rapb.FetchBlobRequest) (*rapb.FetchBlobResponse, error) {
	r, err := a.check(req.GetInstanceName(), req.GetUris())
	if err != nil {
		return nil, err
	}
	return nil, a.miss(r, req.GetUris())
}

// FetchDirectory implements the Remote Asset Fetch service: always a miss.
func (a *assetServer) FetchDirectory(_ context.Context, req *rapb.FetchDirectoryRequest) (*rapb.FetchDirectoryResponse, error) {
	r, err := a.check(req.GetInstanceName(), req.GetUris())
	if err != nil {
		return nil, err
	}
	return nil, a.miss(r, req.GetUris())
}

// PushBlob implements the Remote Asset Push service: refused.
func (a *assetServer) PushBlob(_ context.Context, req *rapb.PushBlobRequest) (*rapb.PushBlobResponse, error) {
	return nil, a.refusePush(req.GetInstanceName(), req.GetUris())
}

// PushDirectory implements the Remote Asset Push service: refused.
func (a *assetServer) PushDirectory(_ context.Context, req *rapb.PushDirectoryRequest) (*rapb.PushDirectoryResponse, error) {
	return nil, a.refusePush(req.GetInstanceName(), req.GetUris())
}

// refusePush fails a push: FAILED_PRECONDITION naming the remote, or for
// the local instance, which has no asset index.
func (a *assetServer) refusePush(instance string, uris []string) error {
	r, err := a.check(instance, uris)
	if err != nil {
		return err
	}
	if r != nil {
		return r.unreachable("pushing " + uris[0])
	}
	return status.Error(codes.FailedPrecondition, "buildbox-casd (castd): the local instance keeps no asset index; push to a remote instance")
}
