package casd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
)

// remoteInstance is what one GetInstanceNameForRemotes call named: the
// remotes BuildStream wants behind an instance name, and the route its
// remote work takes (built on first use).
type remoteInstance struct {
	name string
	req  *localcaspb.GetInstanceNameForRemotesRequest
	// storage is set instead of req for the storage-service remote
	// (--cas-remote), whose certificates are file paths.
	storage *Remote

	once  sync.Once
	route *route
	err   error
}

// remoteSet maps the instance names handed out to their remotes. Safe for
// concurrent use.
type remoteSet struct {
	mu    sync.Mutex
	names map[string]*remoteInstance
}

func newRemoteSet() *remoteSet { return &remoteSet{names: map[string]*remoteInstance{}} }

// add remembers req and returns its instance name, the same for the same
// request (so repeated calls for one remote do not multiply names), and
// whether the name is new.
func (s *remoteSet) add(req *localcaspb.GetInstanceNameForRemotesRequest) (string, bool, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return "", false, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): remotes: %v", err)
	}
	sum := sha256.Sum256(b)
	name := "castd-remote-" + hex.EncodeToString(sum[:8])
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.names[name]; ok {
		return name, false, nil
	}
	s.names[name] = &remoteInstance{name: name, req: proto.Clone(req).(*localcaspb.GetInstanceNameForRemotesRequest)}
	return name, true, nil
}

func (s *remoteSet) get(name string) *remoteInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[name]
}

// closeAll closes the routes built so far, and shared (the daemon route,
// may be nil) once.
func (s *remoteSet) closeAll(shared *route) {
	if shared != nil {
		shared.close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.names {
		if r.route != nil && r.route != shared {
			r.route.close()
		}
	}
}

// GetInstanceNameForRemotes implements LocalCAS: it remembers the remotes
// and returns an instance name for them. With a castd daemon running (see
// castdSocket), the remote work of that instance goes to the daemon and
// BuildStream's remotes are a hint: a push the daemon's policy does not
// make is logged once. Without one, the remotes are dialled directly on
// first use.
func (d *Daemon) GetInstanceNameForRemotes(ctx context.Context, req *localcaspb.GetInstanceNameForRemotesRequest) (*localcaspb.GetInstanceNameForRemotesResponse, error) {
	if req.GetInstanceName() != "" {
		if _, err := d.instance(req.GetInstanceName()); err != nil {
			return nil, err
		}
	}
	name, added, err := d.remotes.add(req)
	if err != nil {
		return nil, err
	}
	if added {
		if sock := d.castd(); sock != "" {
			d.log.Info("remotes of BuildStream go through the castd daemon, whose castd.yaml decides pull order and pushes", "instance", name, "castd", sock, "buildstream-remotes", describe(req))
			d.warnPolicyOverride(ctx, sock, req)
		} else {
			d.log.Info("no castd daemon: talking to BuildStream's remotes directly", "instance", name, "remotes", describe(req))
		}
	}
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

// routeOf returns the route of r, building it on first use: to the castd
// daemon when one answers, else to r's remotes directly. A failure to
// build it is returned to every caller (it is a bad remote description:
// an unparsable URL or certificate).
func (d *Daemon) routeOf(r *remoteInstance) (*route, error) {
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), routeDialTimeout)
		defer cancel()
		if sock := d.castd(); sock != "" {
			if r.storage != nil {
				d.log.Info("storage-service traffic goes through the castd daemon, whose castd.yaml decides pull order and pushes; --cas-remote is a hint", "castd", sock, "cas-remote", r.storage.URL)
			}
			r.route, r.err = d.daemonRoute(sock)
			return
		}
		if r.storage != nil {
			r.route, r.err = storageRoute(ctx, d.store, r.storage, d.log)
			return
		}
		r.route, r.err = directRoute(ctx, d.store, r.req, func() string { return filepath.Join(d.credDir(), r.name) }, d.log)
	})
	return r.route, r.err
}

// daemonRoute returns the one route to the castd daemon on sock, which
// every remote instance shares (one connection however many remotes and
// roles BuildStream names).
func (d *Daemon) daemonRoute(sock string) (*route, error) {
	d.daemonOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), routeDialTimeout)
		defer cancel()
		d.daemonRt, d.daemonErr = daemonRoute(ctx, d.store, sock, d.log)
	})
	return d.daemonRt, d.daemonErr
}

// castd returns the socket of the user's castd daemon, or "" when none
// answers; found once per process (the first time BuildStream names a
// remote, so start-up never pays for it).
func (d *Daemon) castd() string {
	d.castdOnce.Do(func() {
		if d.locateCastd == nil {
			return
		}
		sock := d.locateCastd()
		if castdAnswers(sock) {
			d.castdSock = sock
		} else if sock != "" {
			d.log.Info("no castd daemon answers; remotes are contacted directly", "castd-socket", sock)
		}
	})
	return d.castdSock
}

// credDir is the private directory where the certificates BuildStream
// passes as bytes are written for castd's client to load; removed by
// Close.
func (d *Daemon) credDir() string {
	d.credOnce.Do(func() {
		dir, err := os.MkdirTemp("", "castd-casd-creds-")
		if err != nil { // no usable $TMPDIR: the cache directory's own tmp
			dir, _ = os.MkdirTemp(filepath.Join(d.cacheDir, "tmp"), "castd-casd-creds-")
		}
		d.creds = dir
	})
	return d.creds
}
