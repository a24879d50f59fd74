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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

// serve starts a gRPC server with the Control service and auth on a TCP
// and a Unix listener and returns clients for both and the log buffer.
func serve(t *testing.T, token string, config string) (tcp, unix castdpb.ControlClient, logs *bytes.Buffer) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tokenFile := ""
	if token != "" {
		tokenFile = filepath.Join(dir, "token")
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs = &bytes.Buffer{}
	auth, err := grpcservers.NewListenAuth(tokenFile, true, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.ParseUser(filepath.Join(dir, "castd.yaml"), []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	local, err := disk.Open(filepath.Join(dir, "store"), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := proxy.New(context.Background(), cfg, local, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(auth.ServerOptions()...)
	castdpb.RegisterControlServer(srv, grpcservers.New(cfg, set, local, grpcservers.Info{Version: "test", StoreDir: filepath.Join(dir, "store")}))
	t.Cleanup(func() { srv.Stop(); set.Close(t.Context()); local.Close() })
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(tl) }()
	go func() { _ = srv.Serve(ul) }()
	return castdpb.NewControlClient(dial(t, "passthrough:///"+tl.Addr().String())), castdpb.NewControlClient(dial(t, "unix:"+ul.Addr().String())), logs
}

func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestListenAuth(t *testing.T) {
	tcp, unix, logs := serve(t, "s3cret", "log-level: info\n")
	bearer := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	}
	tests := []struct {
		name, why string
		client    castdpb.ControlClient
		ctx       context.Context
		want      codes.Code
	}{
		{"tcp without token", "a TCP client without the token is refused", tcp, context.Background(), codes.Unauthenticated},
		{"tcp wrong token", "a wrong token is refused", tcp, bearer("nope"), codes.Unauthenticated},
		{"tcp right token", "the configured token is accepted", tcp, bearer("s3cret"), codes.OK},
		{"unix without token", "the Unix socket is not affected", unix, context.Background(), codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			_, err := tc.client.Status(tc.ctx, &castdpb.StatusRequest{})
			if status.Code(err) != tc.want {
				t.Fatalf("Status = %v, want %v", err, tc.want)
			}
		})
	}
	if strings.Contains(logs.String(), "s3cret") || !strings.Contains(logs.String(), "authorization=true") {
		t.Errorf("metadata log must say whether authorization was present and never show it:\n%s", logs)
	}
}

func TestControlOverTCPNeedsListenAuth(t *testing.T) {
	t.Log("without listen-auth, Control (store directory, usage, registrations) is not served to TCP clients; the Unix socket still is")
	tcp, unix, _ := serve(t, "", "log-level: info\n")
	_, err := tcp.Status(context.Background(), &castdpb.StatusRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "listen-auth") {
		t.Errorf("Status over TCP without listen-auth = %v, want PERMISSION_DENIED naming listen-auth", err)
	}
	if _, err := unix.Status(context.Background(), &castdpb.StatusRequest{}); err != nil {
		t.Errorf("Status over the Unix socket = %v", err)
	}
}

func TestRegisterAndStatus(t *testing.T) {
	// A registered project gets a p/NAME-… instance and shows its remote
	// in Status; ConfigReport answers for the live configuration.
	_, unix, _ := serve(t, "", "artifacts:\n  servers:\n  - {url: grpc://127.0.0.1:1, push: true}\n")
	ctx := context.Background()
	reg, err := unix.RegisterProject(ctx, &castdpb.RegisterProjectRequest{ProjectConf: []byte("name: demo\n"), BaseDir: t.TempDir()})
	if err != nil || !strings.HasPrefix(reg.GetInstanceName(), "p/demo-") || !strings.Contains(reg.GetReportJson(), "demo") {
		t.Fatalf("RegisterProject = %v, %v", reg, err)
	}
	st, err := unix.Status(ctx, &castdpb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetVersion() != "test" || len(st.GetRemotes()) != 1 || st.GetRemotes()[0].GetUrl() != "grpc://127.0.0.1:1" ||
		st.GetRemotes()[0].GetBreaker() != "closed" || !st.GetRemotes()[0].GetPush() {
		t.Errorf("Status = %v", st)
	}
	rep, err := unix.ConfigReport(ctx, &castdpb.ConfigReportRequest{})
	if err != nil || !strings.Contains(rep.GetReportJson(), "127.0.0.1:1") {
		t.Errorf("ConfigReport = %v, %v", rep, err)
	}
	_, err = unix.RegisterProject(ctx, &castdpb.RegisterProjectRequest{ProjectConf: []byte("artifacts: {url: x}\n"), BaseDir: "/tmp"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RegisterProject with a bad project.conf = %v, want INVALID_ARGUMENT", err)
	}
}
