package casd_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/casd"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/casdir"
)

// env is a Daemon served on a Unix socket in a temporary cache directory,
// with clients for the services BuildStream uses.
type env struct {
	cacheDir string
	store    *casdir.Store
	daemon   *casd.Daemon
	conn     *grpc.ClientConn
	local    localcaspb.LocalContentAddressableStorageClient
	cas      repb.ContentAddressableStorageClient
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, casdir.Options{ProtectSessionBlobs: true})
}

// newEnvWith is newEnv with the store options given; setup (if any)
// configures the daemon before it serves.
func newEnvWith(t testing.TB, opts casdir.Options, setup ...func(*casd.Daemon)) *env {
	t.Helper()
	e := &env{cacheDir: t.TempDir()}
	st, err := casdir.Open(e.cacheDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	e.daemon = casd.NewDaemon(st, e.cacheDir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, f := range setup {
		f(e.daemon)
	}
	sock := filepath.Join(t.TempDir(), "casd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := e.daemon.GRPCServer()
	go srv.Serve(l)
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		e.daemon.Close()
		st.Close()
	})
	e.conn, e.local, e.cas = conn, localcaspb.NewLocalContentAddressableStorageClient(conn), repb.NewContentAddressableStorageClient(conn)
	return e
}

// blobFile is where BuildStream reads blob d: <cachedir>/cas/objects/xx/yyyy.
func (e *env) blobFile(d *repb.Digest) string {
	return filepath.Join(e.cacheDir, "cas", "objects", d.GetHash()[:2], d.GetHash()[2:])
}

// readBlob reads blob d from disk as BuildStream does, failing the test
// when it is not there.
func (e *env) readBlob(t *testing.T, d *repb.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(e.blobFile(d))
	if err != nil {
		t.Fatalf("BuildStream would open %s: %v", e.blobFile(d), err)
	}
	return b
}

// writeFile writes data to dir/name (parents created) with mode.
func writeFile(t *testing.T, dir, name, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func ctx(t *testing.T) context.Context { return t.Context() }

// sameDigest reports whether a REAPI digest is the digest of b.
func sameDigest(d *repb.Digest, b []byte) bool {
	want := digest.OfBytes(b)
	return d.GetHash() == want.Hash && d.GetSizeBytes() == want.Size
}

// codeOf is the gRPC code of err.
func codeOf(err error) codes.Code { return status.Code(err) }
