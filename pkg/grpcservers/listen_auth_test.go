package grpcservers_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/grpcservers"
)

func TestListenAuthRejectionLog(t *testing.T) {
	t.Log("an operator sees refused TCP clients and where they come from, never the token, and not once per retry")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("right-t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	a, err := grpcservers.NewListenAuth(tokenFile, false, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clock := clock.NewFake(time.Unix(1_000_000, 0))
	grpcservers.SetClock(a, clock)
	call := func(token string) {
		t.Helper()
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40123}})
		if token != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
		}
		_, err := a.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/castd.v1.Control/Status"},
			func(context.Context, any) (any, error) { return nil, nil })
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call with token %q = %v, want UNAUTHENTICATED", token, err)
		}
	}

	call("wr0ng-t0ken")
	first := logs.String()
	for _, want := range []string{"level=WARN", "wrong bearer token", "peer=192.0.2.7:40123", "method=/castd.v1.Control/Status"} {
		if !strings.Contains(first, want) {
			t.Errorf("rejection log lacks %q:\n%s", want, first)
		}
	}
	call("wr0ng-t0ken")
	call("")
	if logs.String() != first {
		t.Errorf("rejections within a minute were logged again:\n%s", logs)
	}
	clock.Advance(time.Minute)
	call("")
	second := strings.TrimPrefix(logs.String(), first)
	if !strings.Contains(second, "no bearer token") || !strings.Contains(second, "refused_since_last_warning=2") {
		t.Errorf("after a minute, want a warning counting the 2 left out, got:\n%s", second)
	}
	if strings.Contains(logs.String(), "t0ken") {
		t.Errorf("a token value was logged:\n%s", logs)
	}
}
