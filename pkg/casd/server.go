package casd

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/casdir"
)

// Daemon is castd standing in for buildbox-casd over one cache directory:
// the LocalCAS service BuildStream drives, plus REAPI CAS, ByteStream,
// Capabilities and GetTree (castd's own handlers over the same store) and
// Remote Asset; the remote work of instances GetInstanceNameForRemotes
// hands out goes through the user's castd daemon or to BuildStream's
// remotes (route.go). Safe for concurrent use.
type Daemon struct {
	localcaspb.UnimplementedLocalContentAddressableStorageServer

	store    *casdir.Store
	cacheDir string
	log      *slog.Logger
	remotes  *remoteSet

	// locateCastd finds the user's castd daemon socket (castdSocket); nil
	// means never use one. castd resolves it once.
	locateCastd func() string
	castdOnce   sync.Once
	castdSock   string
	daemonOnce  sync.Once
	daemonRt    *route // the route to castdSock, shared by every remote instance
	daemonErr   error
	policyNoted sync.Map // remoteKey → noted: the policy-override warning is logged once
	// storage is the local instance "" as a proxy in front of --cas-remote
	// (UseStorage); nil without one.
	storage  *remoteInstance
	credOnce sync.Once
	creds    string // credDir

	mu       sync.Mutex
	staged   map[*stagedTree]struct{} // live StageTree results, removed by Close
	stopping chan struct{}            // closed by Stopping
	stopOnce sync.Once
}

// NewDaemon returns a Daemon over st, the store of cacheDir. It starts
// nothing; GRPCServer builds the server and Close removes what is still
// staged. It uses no castd daemon until UseCastd says where to find one:
// BuildStream's remotes are then contacted directly.
func NewDaemon(st *casdir.Store, cacheDir string, log *slog.Logger) *Daemon {
	return &Daemon{store: st, cacheDir: cacheDir, log: log, remotes: newRemoteSet(), staged: map[*stagedTree]struct{}{}, stopping: make(chan struct{})}
}

// UseCastd makes d send the remote work of every instance
// GetInstanceNameForRemotes hands out to the user's castd daemon, found
// on the first such call by castdSocket(flag) (flag is --castd-socket;
// NoCastd turns it off). Call it before serving.
func (d *Daemon) UseCastd(flag string) {
	d.locateCastd = func() string { return castdSocket(flag) }
}

// Stopping tells d that the server is stopping: StageTree streams still
// waiting for their client's second request end at once (their trees are
// removed), so a graceful stop does not wait for clients that hold a tree.
// Safe to call more than once.
func (d *Daemon) Stopping() {
	d.stopOnce.Do(func() { close(d.stopping) })
}

// GRPCServer returns a new grpc.Server with every service registered:
// castd's REAPI handlers (pkg/grpcservers; no ActionCache or Execution
// yet: UNIMPLEMENTED), LocalCAS and Remote Asset.
func (d *Daemon) GRPCServer() *grpc.Server {
	srv := grpcservers.NewServer(d, grpcservers.Options{
		Logger:    d.log,
		UploadDir: filepath.Join(d.cacheDir, "cas", "tmp"),
		// BuildStream's cache directory (pkg/store/casdir) holds SHA-256
		// blobs only, as buildbox-casd's does.
		DigestFunctions: digest.SetOf(digest.SHA256),
	})
	localcaspb.RegisterLocalContentAddressableStorageServer(srv, d)
	registerAsset(srv, d)
	return srv
}

// Close removes every tree StageTree staged that no stream has cleaned up
// yet, closes the connections to remotes and the castd daemon, and
// removes the certificates written for them. Call it after the server
// stopped.
func (d *Daemon) Close() {
	d.mu.Lock()
	trees := d.staged
	d.staged = map[*stagedTree]struct{}{}
	d.mu.Unlock()
	for t := range trees {
		t.remove(d.log)
	}
	d.remotes.closeAll(d.daemonRt)
	if d.storage != nil && d.storage.route != nil && d.storage.route != d.daemonRt {
		d.storage.route.close()
	}
	if d.creds != "" {
		_ = os.RemoveAll(d.creds)
	}
}

// ActionCache implements grpcservers.Backend: castd as buildbox-casd has
// no action cache yet.
func (d *Daemon) ActionCache(context.Context, string) (store.ActionCache, error) {
	return nil, status.Error(codes.Unimplemented, "buildbox-casd (castd): no action cache yet")
}

// instance resolves an instance name: for the local instance "" nil, or
// the storage-service remote when --cas-remote was given; the remotes of
// a name GetInstanceNameForRemotes returned; INVALID_ARGUMENT for any
// other name.
func (d *Daemon) instance(name string) (*remoteInstance, error) {
	if name == "" {
		return d.storage, nil
	}
	if r := d.remotes.get(name); r != nil {
		return r, nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): instance_name %q was not returned by GetInstanceNameForRemotes", name)
}

// GetLocalDiskUsage implements LocalCAS: the bytes of blobs in the cache
// directory (counted across every daemon on it) and the quota.
func (d *Daemon) GetLocalDiskUsage(context.Context, *localcaspb.GetLocalDiskUsageRequest) (*localcaspb.GetLocalDiskUsageResponse, error) {
	used, err := d.store.Usage()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "buildbox-casd (castd): disk usage: %v", err)
	}
	return &localcaspb.GetLocalDiskUsageResponse{SizeBytes: used, QuotaBytes: d.store.Quota()}, nil
}
