package testutil

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store"
)

// Where a REAPIServer listens.
const (
	ListenTCP     = "tcp"     // a loopback TCP port (the default)
	ListenUnix    = "unix"    // a Unix socket in a temporary directory
	ListenBufconn = "bufconn" // in memory, reachable only through Dial
)

// REAPIOptions says what a REAPIServer serves and how. The zero value
// serves a fresh store.Memory as CAS and action cache on a loopback port.
type REAPIOptions struct {
	// CAS is the blob storage of every instance; nil means a fresh
	// store.Memory (also the action cache then, unless ActionCache is set).
	CAS store.CAS
	// ActionCache returns the action cache of an instance; nil means the
	// fresh store.Memory when CAS is nil too, else none (UNIMPLEMENTED).
	ActionCache func(instance string) store.ActionCache
	// Backend, when set, replaces CAS and ActionCache (tests that record
	// which instances are asked).
	Backend grpcservers.Backend
	// Server tunes the REAPI services (batch limits, execution, metrics).
	Server grpcservers.Options
	// Unary and Stream run before every call, in order: the fault hooks
	// (fail, record, stall) a test needs.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// GRPC are further server options, such as grpc.Creds for TLS.
	GRPC []grpc.ServerOption
	// Register adds services beside REAPI (Remote Asset, Operations)
	// before the server starts.
	Register func(*grpc.Server)
	// Listen is ListenTCP (""), ListenUnix or ListenBufconn.
	Listen string
}

// REAPIServer is castd's own gRPC services (pkg/grpcservers) serving a
// store in process, standing in for a remote cache or for castd itself in
// package tests. It stops when the test ends.
type REAPIServer struct {
	// Server is the running gRPC server.
	Server *grpc.Server
	// Mem is the store.Memory served when REAPIOptions.CAS was nil.
	Mem *store.Memory
	// Addr is host:port for TCP, the socket path for Unix, "bufconn"
	// otherwise.
	Addr string
	buf  *bufconn.Listener
	unix bool
}

// StartREAPI starts a REAPIServer as opts says; it is stopped when t ends.
func StartREAPI(t testing.TB, opts REAPIOptions) *REAPIServer {
	t.Helper()
	s := &REAPIServer{}
	backend := opts.Backend
	if backend == nil {
		cas, ac := opts.CAS, opts.ActionCache
		if cas == nil {
			mem := store.NewMemory()
			s.Mem, cas = mem, mem
			if ac == nil {
				ac = func(string) store.ActionCache { return mem }
			}
		}
		backend = grpcservers.NewStaticBackend(cas, ac)
	}
	extra := append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(opts.Unary...), grpc.ChainStreamInterceptor(opts.Stream...)}, opts.GRPC...)
	s.Server = grpcservers.NewServer(backend, opts.Server, extra...)
	if opts.Register != nil {
		opts.Register(s.Server)
	}
	lis := s.listen(t, opts.Listen)
	go func() { _ = s.Server.Serve(lis) }()
	t.Cleanup(s.Server.Stop)
	return s
}

func (s *REAPIServer) listen(t testing.TB, how string) net.Listener {
	t.Helper()
	switch how {
	case ListenBufconn:
		s.buf = bufconn.Listen(1 << 20)
		s.Addr = "bufconn"
		return s.buf
	case ListenUnix:
		// Not t.TempDir: socket paths are limited to ~100 bytes.
		dir, err := os.MkdirTemp("", "castd-test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		s.unix, s.Addr = true, filepath.Join(dir, "castd.sock")
	default:
		s.Addr = "127.0.0.1:0"
	}
	network := "tcp"
	if s.unix {
		network = "unix"
	}
	lis, err := net.Listen(network, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = lis.Addr().String()
	return lis
}

// URL is the server's address as a castd remote URL ("grpc://HOST:PORT"
// or "unix:PATH"); a bufconn server has none.
func (s *REAPIServer) URL() string {
	if s.unix {
		return "unix:" + s.Addr
	}
	return "grpc://" + s.Addr
}

// Dial returns an insecure client connection to s, closed when t ends;
// opts add to the defaults (message sizes, flow-control windows).
func (s *REAPIServer) Dial(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	target := s.Addr
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	switch {
	case s.buf != nil:
		target = "passthrough:///bufconn"
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.buf.DialContext(ctx) }))
	case s.unix:
		target = "unix://" + s.Addr
	}
	conn, err := grpc.NewClient(target, append(dial, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// ServeGRPC serves the fake services register puts on a bare gRPC server
// (no castd services) on a loopback port until t ends, and returns its
// host:port.
func ServeGRPC(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	srv := grpc.NewServer()
	register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}
