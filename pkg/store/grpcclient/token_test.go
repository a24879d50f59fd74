package grpcclient_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// tokenGate accepts only calls carrying "Bearer <want>".
type tokenGate struct {
	mu   sync.Mutex
	want string
}

func (g *tokenGate) set(tok string) {
	g.mu.Lock()
	g.want = tok
	g.mu.Unlock()
}

func (g *tokenGate) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	g.mu.Lock()
	want := "Bearer " + g.want
	g.mu.Unlock()
	if got := md.Get("authorization"); len(got) != 1 || got[0] != want {
		return nil, status.Error(codes.Unauthenticated, "bad token")
	}
	return h(ctx, req)
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func findOne(r *grpcclient.Remote) error {
	_, err := r.CAS().FindMissing(context.Background(), []digest.Digest{digest.OfBytes([]byte("t"))})
	return err
}

func TestTokenGoesOnlyToItsRemote(t *testing.T) {
	t.Log("credentials configured for one remote must never reach another")
	tokFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokFile, "s3cret")
	gate := &tokenGate{want: "s3cret"}
	withToken := startServer(t, serverConfig{unary: gate.unary})
	without := startServer(t, serverConfig{})
	a := dial(t, grpcclient.Config{URL: "grpc://" + withToken.addr, AccessTokenFile: tokFile})
	b := dial(t, grpcclient.Config{URL: "grpc://" + without.addr})
	if err := findOne(a); err != nil {
		t.Fatalf("call with the token: %v", err)
	}
	if err := findOne(b); err != nil {
		t.Fatalf("call without a token: %v", err)
	}
	if got := withToken.authSeen(); !slices.Equal(got, []string{"Bearer s3cret"}) {
		t.Errorf("the token's remote saw authorization %q", got)
	}
	if got := without.authSeen(); !slices.Equal(got, []string{""}) {
		t.Errorf("the other remote saw authorization %q; want none", got)
	}
}

func TestTokenReload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		why    string
		reload time.Duration
		// advance is how far the clock moves after the file changes.
		advance time.Duration
		// calls is how many calls the server sees for the call after the change.
		calls int
	}{
		{"on unauthenticated", "a rotated token is picked up when the remote rejects the old one, with one retry", 0, 0, 2},
		{"on the reload interval", "a token is re-read once access-token-reload-interval has passed", 10 * time.Minute, 10 * time.Minute, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			tokFile := filepath.Join(t.TempDir(), "token")
			writeToken(t, tokFile, "one")
			gate := &tokenGate{want: "one"}
			ts := startServer(t, serverConfig{unary: gate.unary})
			clock := newFakeClock()
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, AccessTokenFile: tokFile, AccessTokenReload: tc.reload}, grpcclient.WithClock(clock))
			if err := findOne(r); err != nil {
				t.Fatalf("first call: %v", err)
			}
			writeToken(t, tokFile, "two")
			gate.set("two")
			clock.Advance(tc.advance)
			before := ts.count("FindMissingBlobs")
			if err := findOne(r); err != nil {
				t.Fatalf("call after the token changed: %v", err)
			}
			if n := ts.count("FindMissingBlobs") - before; n != tc.calls {
				t.Errorf("server saw %d calls; want %d", n, tc.calls)
			}
		})
	}
}

func TestTokenRejectedTwiceFails(t *testing.T) {
	t.Log("a token the remote keeps rejecting is retried once, then UNAUTHENTICATED comes back")
	tokFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokFile, "wrong")
	ts := startServer(t, serverConfig{unary: (&tokenGate{want: "right"}).unary})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, AccessTokenFile: tokFile, RetryLimit: 3})
	if err := findOne(r); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("call: %v; want UNAUTHENTICATED", err)
	}
	if n := ts.count("FindMissingBlobs"); n != 2 {
		t.Errorf("server saw %d calls; want 2 (one re-read of the token)", n)
	}
}

func TestUnixSocket(t *testing.T) {
	t.Log("unix:PATH remotes (another castd on this machine) work, token included")
	tokFile := filepath.Join(t.TempDir(), "token")
	writeToken(t, tokFile, "local")
	ts := startServer(t, serverConfig{unix: true, unary: (&tokenGate{want: "local"}).unary})
	sock := ts.addr
	r := dial(t, grpcclient.Config{URL: "unix:" + sock, AccessTokenFile: tokFile})
	if err := findOne(r); err != nil {
		t.Fatalf("call over the socket: %v", err)
	}
	if r.Name() != sock || ts.count("FindMissingBlobs") != 1 {
		t.Errorf("Name() = %q, calls = %d; want the socket path and 1 call", r.Name(), ts.count("FindMissingBlobs"))
	}
}
