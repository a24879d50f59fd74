package casd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/casdir"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// route is where the remote work of one instance goes: either the user's
// castd daemon (which applies castd.yaml: pull order, push rules, durable
// write-back) or, without a daemon, the remotes BuildStream named, dialled
// directly. Built once per instance on first use; safe for concurrent use.
type route struct {
	via    string    // for messages: "castd daemon at SOCK" or "remote URL"
	read   store.CAS // local cache first, then the remote; hits are stored locally (verified)
	remote store.CAS // the remote alone (FindMissing for uploads)
	// push is where uploads go; nil when BuildStream marked the remote
	// read_only (a daemon always takes them: its policy decides).
	push        store.CAS
	assets      *grpcclient.AssetClient // nil when no Remote Asset remote was named
	assetPushOK bool
	closers     []func() error
}

// close closes the connections of r.
func (r *route) close() {
	for _, c := range r.closers {
		_ = c()
	}
}

// daemonRoute sends everything to the castd daemon on socket, instance ""
// (the user's global remotes): the daemon caches what it pulls and pushes
// what it is given through its write-back queue to the user's
// push-enabled remotes only.
func daemonRoute(ctx context.Context, local *casdir.Store, socket string, log *slog.Logger) (*route, error) {
	r, err := grpcclient.Dial(ctx, grpcclient.Config{URL: "unix:" + socket, Name: "castd daemon", RetryLimit: -1}, grpcclient.WithLogger(log))
	if err != nil {
		return nil, err
	}
	rt := &route{via: "castd daemon at " + socket, remote: r.CAS(), push: r.CAS(), assets: r.Assets(), assetPushOK: true, closers: []func() error{r.Close}}
	rt.read = fanout.NewCAS(local, []fanout.Tier{{Name: rt.via, CAS: r.CAS(), Origin: "user"}}, fanout.Options{Logger: log})
	return rt, nil
}

// directRoute dials the remotes of req itself with castd's upstream
// client (TLS from the given certificate bytes, mTLS, token file,
// retries, breaker): reads fan out to the CAS remote into the local
// cache, uploads go to it unless it is read_only. Certificates are
// written to files under credDir() (mode 0600) for the client to load;
// credDir is called only when there are some.
func directRoute(ctx context.Context, local *casdir.Store, req *localcaspb.GetInstanceNameForRemotesRequest, credDir func() string, log *slog.Logger) (*route, error) {
	rt := &route{}
	if cas := req.GetContentAddressableStorage(); cas.GetUrl() != "" {
		r, err := dialRemote(ctx, cas, func() string { return filepath.Join(credDir(), "cas") }, log)
		if err != nil {
			return nil, err
		}
		rt.closers = append(rt.closers, r.Close)
		rt.via, rt.remote = "remote "+cas.GetUrl(), r.CAS()
		if !cas.GetReadOnly() {
			rt.push = r.CAS()
		}
		rt.read = fanout.NewCAS(local, []fanout.Tier{{Name: r.Name(), CAS: r.CAS(), Origin: "project"}}, fanout.Options{Logger: log})
	}
	if ra := req.GetRemoteAsset(); ra.GetUrl() != "" {
		r, err := dialRemote(ctx, ra, func() string { return filepath.Join(credDir(), "asset") }, log)
		if err != nil {
			rt.close()
			return nil, err
		}
		rt.closers = append(rt.closers, r.Close)
		rt.assets, rt.assetPushOK = r.Assets(), !ra.GetReadOnly()
		if rt.via == "" {
			rt.via = "remote " + ra.GetUrl()
		}
	}
	return rt, nil
}

// dialRemote dials one remote BuildStream named, its certificates written
// to files in dir().
func dialRemote(ctx context.Context, rm *localcaspb.Remote, dir func() string, log *slog.Logger) (*grpcclient.Remote, error) {
	cfg := grpcclient.Config{
		URL: rm.GetUrl(), InstanceName: rm.GetInstanceName(), AccessTokenFile: rm.GetAccessTokenPath(),
		AccessTokenReload: rm.GetAccessTokenReloadInterval().AsDuration(),
		Keepalive:         rm.GetKeepaliveTime().AsDuration(),
		RetryLimit:        int(rm.GetRetryLimit()),
		RetryDelay:        rm.GetRetryDelay().AsDuration(),
		RequestTimeout:    rm.GetRequestTimeout().AsDuration(),
	}
	if rm.GetRetryLimit() == 0 && rm.GetRetryDelay() == nil {
		cfg.RetryLimit = -1 // BuildStream said nothing: castd's defaults
	}
	var err error
	if cfg.ServerCert, err = writeCred(dir, "server-cert.pem", rm.GetServerCert()); err != nil {
		return nil, err
	}
	if cfg.ClientCert, err = writeCred(dir, "client-cert.pem", rm.GetClientCert()); err != nil {
		return nil, err
	}
	if cfg.ClientKey, err = writeCred(dir, "client-key.pem", rm.GetClientKey()); err != nil {
		return nil, err
	}
	r, err := grpcclient.Dial(ctx, cfg, grpcclient.WithLogger(log))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): remote %s: %v", rm.GetUrl(), err)
	}
	return r, nil
}

// writeCred writes data to dir()/name readable by the owner only and
// returns the path, or "" for no data.
func writeCred(dirOf func() string, name string, data []byte) (string, error) {
	if len(data) == 0 {
		return "", nil
	}
	dir := dirOf()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", status.Errorf(codes.Internal, "buildbox-casd (castd): credentials directory: %v", err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return "", status.Errorf(codes.Internal, "buildbox-casd (castd): %s: %v", name, err)
	}
	return p, nil
}

// routeDialTimeout bounds building a route; dialling is lazy, so this
// covers only parsing and credential loading.
const routeDialTimeout = 10 * time.Second

// describe names the remotes of req for the log: "cas=URL asset=URL".
func describe(req *localcaspb.GetInstanceNameForRemotesRequest) string {
	s := ""
	for _, p := range []struct {
		role string
		rm   *localcaspb.Remote
	}{{"cas", req.GetContentAddressableStorage()}, {"asset", req.GetRemoteAsset()}, {"action-cache", req.GetActionCache()}, {"execution", req.GetExecution()}} {
		if p.rm.GetUrl() != "" {
			s += fmt.Sprintf(" %s=%s", p.role, p.rm.GetUrl())
			if p.rm.GetReadOnly() {
				s += "(read-only)"
			}
		}
	}
	return s
}
