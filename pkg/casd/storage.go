package casd

import (
	"context"
	"log/slog"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store/casdir"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// UseStorage makes d a proxy in front of r, BuildStream's `cache:
// storage-service` (--cas-remote): the local instance "" then reads what
// the cache lacks from r (verified, stored in the cache directory) and
// uploads what is captured or uploaded to it. With a castd daemon
// running, that traffic goes to the daemon instead, like every other
// remote instance: castd's policy wins. Call it before serving.
func (d *Daemon) UseStorage(r *Remote) {
	if r == nil {
		d.storage = nil
		return
	}
	d.storage = &remoteInstance{name: "", storage: r}
}

// storageRoute dials the storage-service remote r with castd's upstream
// client; unlike GetInstanceNameForRemotes' certificate bytes, --cas-*
// certificates and the token are file paths, loaded as they are.
func storageRoute(ctx context.Context, local *casdir.Store, r *Remote, log *slog.Logger) (*route, error) {
	cfg := grpcclient.Config{
		URL: r.URL, InstanceName: r.Instance, Name: "storage-service " + r.URL,
		ServerCert: r.ServerCert, ClientCert: r.ClientCert, ClientKey: r.ClientKey,
		AccessTokenFile: r.AccessToken, AccessTokenReload: r.TokenReloadInterval,
		Keepalive: r.KeepaliveTime, RetryLimit: r.RetryLimit, RetryDelay: r.RetryDelay,
		RequestTimeout: r.RequestTimeout,
	}
	if r.RetryLimit == 0 && r.RetryDelay == 0 {
		cfg.RetryLimit = -1 // BuildStream said nothing: castd's defaults
	}
	c, err := grpcclient.Dial(ctx, cfg, grpcclient.WithLogger(log))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): --cas-remote=%s: %v", r.URL, err)
	}
	rt := &route{via: "storage-service " + r.URL, remote: c.CAS(), push: c.CAS(), closers: []func() error{c.Close}}
	rt.read = fanout.NewCAS(local, []fanout.Tier{{Name: c.Name(), CAS: c.CAS(), Origin: "project"}}, fanout.Options{Logger: log})
	return rt, nil
}

// uploadCaptured uploads ds, just captured for instance, through its
// route unless skipUpload or the instance is the local one without a
// storage-service. It returns the first failure, named.
func (d *Daemon) uploadCaptured(ctx context.Context, instance string, skipUpload bool, ds []*repb.Digest) error {
	if skipUpload || len(ds) == 0 || instance != "" || d.storage == nil {
		return nil
	}
	rt, err := d.routeOf(d.storage)
	if err != nil {
		return err
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
