package loopguard_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/castd/castd/internal/loopguard"
)

// server is an in-process gRPC health server behind guard (nil for none)
// that records the marks of every request its handlers see.
type server struct {
	mu    sync.Mutex
	seen  [][]string
	raw   [][]string // the Key entries as received
	conn  func(opts ...grpc.DialOption) *grpc.ClientConn
	calls int
}

func startServer(t *testing.T, guard *loopguard.Guard) *server {
	t.Helper()
	s := &server{}
	var opts []grpc.ServerOption
	if guard != nil {
		opts = guard.ServerOptions()
	}
	// Recorded after the guard: a refused request never gets here.
	opts = append(opts,
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			s.record(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			s.record(ss.Context())
			return h(srv, ss)
		}))
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	s.conn = func(opts ...grpc.DialOption) *grpc.ClientConn {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
		cc, err := grpc.NewClient("passthrough:///bufnet", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}
	return s
}

func (s *server) record(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.seen = append(s.seen, loopguard.Marks(ctx))
	md, _ := metadata.FromIncomingContext(ctx)
	s.raw = append(s.raw, md.Get(loopguard.Key))
}

// last returns the marks of the last request served and how many were.
func (s *server) last() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		return nil, 0
	}
	return s.seen[len(s.seen)-1], s.calls
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func check(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// watch opens the server-streaming Watch and returns the first answer's
// error.
func watch(ctx context.Context, cc *grpc.ClientConn) error {
	st, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

func TestGuard(t *testing.T) {
	a, b := loopguard.New(), loopguard.New()
	if a.ID() == b.ID() || len(a.ID()) != 32 {
		t.Fatalf("ids %q and %q: want two different 32-character ids", a.ID(), b.ID())
	}
	calls := map[string]func(context.Context, *grpc.ClientConn) error{"unary": check, "stream": watch}
	for kind, call := range calls {
		t.Run(kind+" own mark refused", func(t *testing.T) {
			t.Log("a request that carries this castd's own id went round a loop: refused before any handler, with a code no client retries")
			s := startServer(t, a)
			err := call(ctxFor(t), s.conn(a.DialOptions()...))
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "a remote loops back to castd itself") || !strings.Contains(err.Error(), a.ID()) {
				t.Errorf("call = %v, want FAILED_PRECONDITION saying a remote loops back, with the id", err)
			}
			if _, n := s.last(); n != 0 {
				t.Errorf("the handler ran %d times for a refused request", n)
			}
		})
		t.Run(kind+" other castd served", func(t *testing.T) {
			t.Log("castd a asking castd b is no loop: b serves it and sees a's mark")
			s := startServer(t, b)
			if err := call(ctxFor(t), s.conn(a.DialOptions()...)); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.last(); strings.Join(got, ",") != a.ID() {
				t.Errorf("server saw marks %q, want [%s]", got, a.ID())
			}
		})
	}
	t.Run("unmarked client served", func(t *testing.T) {
		t.Log("a client that is not castd (bst, Bazel) sends no mark and is served")
		s := startServer(t, a)
		if err := check(ctxFor(t), s.conn()); err != nil {
			t.Fatal(err)
		}
		if got, n := s.last(); n != 1 || len(got) != 0 {
			t.Errorf("server saw %d requests, last with marks %q; want 1 without marks", n, got)
		}
	})
}

func TestGuardCarriesMarksOn(t *testing.T) {
	t.Log("castd b serving a request from a passes it on with a's id, then its own; nothing else a client sent is forwarded")
	a, b := loopguard.New(), loopguard.New()
	s := startServer(t, nil)
	served := metadata.Pairs(loopguard.Key, a.ID()+", not-an-id", loopguard.Key, "Bearer s3cret")
	ctx := metadata.NewIncomingContext(ctxFor(t), served)
	// A stale mark already on the outgoing context is replaced, not stacked.
	ctx = metadata.AppendToOutgoingContext(ctx, loopguard.Key, b.ID())
	if err := check(ctx, s.conn(b.DialOptions()...)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	got := s.raw[len(s.raw)-1]
	s.mu.Unlock()
	if want := a.ID() + "," + b.ID(); len(got) != 1 || got[0] != want {
		t.Errorf("upstream received %s: %q, want exactly %q", loopguard.Key, got, want)
	}
}
