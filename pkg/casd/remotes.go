package casd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
)

// remoteInstance is what one GetInstanceNameForRemotes call named: the
// remotes BuildStream wants behind an instance name. castd remembers them
// but cannot reach them yet: reads through such an instance are answered
// from the local store, and pushes fail naming the remote.
type remoteInstance struct {
	name string
	req  *localcaspb.GetInstanceNameForRemotesRequest
}

// url names the remote for messages: the CAS remote's URL, else the first
// one set.
func (r *remoteInstance) url() string {
	for _, rm := range []*localcaspb.Remote{r.req.GetContentAddressableStorage(), r.req.GetRemoteAsset(), r.req.GetActionCache(), r.req.GetExecution()} {
		if rm.GetUrl() != "" {
			return rm.GetUrl()
		}
	}
	return "(no url)"
}

// unreachable is the error for work only the remote can do.
func (r *remoteInstance) unreachable(what string) error {
	return status.Errorf(codes.FailedPrecondition,
		"buildbox-casd (castd): %s needs remote %s (instance %q), and castd as buildbox-casd does not contact remotes yet", what, r.url(), r.name)
}

// remoteSet maps the instance names handed out to their remotes. Safe for
// concurrent use.
type remoteSet struct {
	mu    sync.Mutex
	names map[string]*remoteInstance
}

func newRemoteSet() *remoteSet { return &remoteSet{names: map[string]*remoteInstance{}} }

// add remembers req and returns its instance name, the same for the same
// request (so repeated calls for one remote do not multiply names).
func (s *remoteSet) add(req *localcaspb.GetInstanceNameForRemotesRequest) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return "", status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): remotes: %v", err)
	}
	sum := sha256.Sum256(b)
	name := "castd-remote-" + hex.EncodeToString(sum[:8])
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.names[name]; !ok {
		s.names[name] = &remoteInstance{name: name, req: proto.Clone(req).(*localcaspb.GetInstanceNameForRemotesRequest)}
	}
	return name, nil
}

func (s *remoteSet) get(name string) *remoteInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[name]
}

// GetInstanceNameForRemotes implements LocalCAS: it remembers the remotes
// and returns an instance name for them. Nothing is dialled (item 4 of
// issue 16 will route them through castd's policy).
func (d *Daemon) GetInstanceNameForRemotes(_ context.Context, req *localcaspb.GetInstanceNameForRemotesRequest) (*localcaspb.GetInstanceNameForRemotesResponse, error) {
	if req.GetInstanceName() != "" {
		if _, err := d.instance(req.GetInstanceName()); err != nil {
			return nil, err
		}
	}
	name, err := d.remotes.add(req)
	if err != nil {
		return nil, err
	}
	d.log.Info("remotes remembered; castd as buildbox-casd does not contact them yet", "instance", name, "url", d.remotes.get(name).url())
	return &localcaspb.GetInstanceNameForRemotesResponse{InstanceName: name}, nil
}

// GetInstanceNameForRemote implements LocalCAS's deprecated one-remote
// form as a CAS remote of GetInstanceNameForRemotes.
func (d *Daemon) GetInstanceNameForRemote(ctx context.Context, req *localcaspb.GetInstanceNameForRemoteRequest) (*localcaspb.GetInstanceNameForRemoteResponse, error) {
	resp, err := d.GetInstanceNameForRemotes(ctx, &localcaspb.GetInstanceNameForRemotesRequest{
		ContentAddressableStorage: &localcaspb.Remote{
			Url: req.GetUrl(), InstanceName: req.GetInstanceName(),
			ServerCert: req.GetServerCert(), ClientKey: req.GetClientKey(), ClientCert: req.GetClientCert(),
		},
	})
	if err != nil {
		return nil, err
	}
	return &localcaspb.GetInstanceNameForRemoteResponse{InstanceName: resp.GetInstanceName()}, nil
}
