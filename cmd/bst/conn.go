package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// dialCheckTimeout bounds the connect test that tells "castd not running"
// from other failures.
const dialCheckTimeout = 5 * time.Second

// startHint tells people how to start castd.
const startHint = "start it with 'make run' in a castd checkout, or 'systemctl --user enable --now castd.socket'; " +
	"or point bst at a running castd with --socket or $CASTD_SOCKET"

// castdConn is the gRPC connection to castd's socket, plus the REAPI CAS
// client (batched, verified reads) for one instance name.
type castdConn struct {
	socket string
	cc     *grpc.ClientConn
	remote *grpcclient.Remote
}

// socketPath is --socket, else $CASTD_SOCKET, else the first unix listener
// of castd's own configuration (user config file and CASTD_* variables, as
// the daemon loads them), else castd's built-in default socket.
func (a *app) socketPath() string {
	if a.socketFlag != "" {
		return a.socketFlag
	}
	if s := os.Getenv("CASTD_SOCKET"); s != "" {
		return s
	}
	if s := policy.ConfiguredSocket(); s != "" {
		return s
	}
	return policy.Defaults().Listen[0].Address
}

// connect opens the connection to castd once, after checking that something
// accepts connections on the socket, so that "not running" and "permission
// denied" get their own messages instead of a gRPC retry loop.
func (a *app) connect() (*castdConn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	socket, err := unixSocket(a.socketPath())
	if err != nil {
		return nil, err
	}
	if err := probeSocket(socket); err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient("unix:"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("castd socket %s: %w", socket, err)
	}
	a.conn = &castdConn{socket: socket, cc: cc}
	return a.conn, nil
}

// unixSocket accepts a socket path, also written unix:PATH or
// unix://PATH; a TCP address is refused: bst talks to the local castd only.
func unixSocket(s string) (string, error) {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		return strings.TrimPrefix(rest, "//"), nil
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		return "", usagef("bst speaks only to a Unix socket (a path such as $XDG_RUNTIME_DIR/castd/castd.sock), not %s:// addresses: %q", scheme, s)
	}
	return s, nil
}

// probeSocket connects to socket once and explains the usual failures.
func probeSocket(socket string) error {
	c, err := net.DialTimeout("unix", socket, dialCheckTimeout)
	switch {
	case err == nil:
		return c.Close()
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("castd is not running (no socket at %s); %s", socket, startHint)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("castd is not running (nothing listens on %s); %s", socket, startHint)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("permission denied on castd socket %s: it belongs to another user or group (castd's socket-mode); "+
			"ask its owner for access or use your own castd with --socket", socket)
	}
	return fmt.Errorf("castd socket %s: %w", socket, err)
}

// cas returns the CAS of instance on castd: batched for small blobs,
// ByteStream for large ones, every read verified against its digest.
func (c *castdConn) cas(ctx context.Context, instance string) (store.CAS, error) {
	if c.remote != nil {
		return c.remote.CAS(), nil
	}
	r, err := grpcclient.Dial(ctx, grpcclient.Config{URL: "unix:" + c.socket, InstanceName: instance, Name: "castd"})
	if err != nil {
		return nil, err
	}
	c.remote = r
	return r.CAS(), nil
}

func (c *castdConn) control() castdpb.ControlClient { return castdpb.NewControlClient(c.cc) }

func (c *castdConn) execution() repb.ExecutionClient { return repb.NewExecutionClient(c.cc) }

func (c *castdConn) actionCache() repb.ActionCacheClient { return repb.NewActionCacheClient(c.cc) }

func (c *castdConn) fetch() assetpb.FetchClient { return assetpb.NewFetchClient(c.cc) }

func (c *castdConn) push() assetpb.PushClient { return assetpb.NewPushClient(c.cc) }

// close closes both connections.
func (c *castdConn) close() {
	if c.remote != nil {
		_ = c.remote.Close()
	}
	_ = c.cc.Close()
}
