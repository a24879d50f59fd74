package integration_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	castdpb "github.com/castd/castd/api/castd/v1"
)

func TestControlOverTCPNeedsListenAuth(t *testing.T) {
	t.Log("a castd with a grpc:// listener and no listen-auth serves CAS to the network but not Control: " +
		"Status would tell anyone the store directory and usage")
	u := startPlainUpstream(t)

	tcp := castdpb.NewControlClient(dialTCP(t, u.addr, insecure.NewCredentials()))
	_, err := tcp.Status(ctxFor(t, 10*time.Second), &castdpb.StatusRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "listen-auth") {
		t.Fatalf("Control/Status over grpc:// without listen-auth = %v, want PERMISSION_DENIED naming listen-auth", err)
	}
	_, err = tcp.RegisterProject(ctxFor(t, 10*time.Second), &castdpb.RegisterProjectRequest{ProjectConf: []byte("name: x\n"), BaseDir: "/tmp"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("Control/RegisterProject over grpc:// without listen-auth = %v, want PERMISSION_DENIED", err)
	}

	st, err := castdpb.NewControlClient(u.conn(t)).Status(ctxFor(t, 10*time.Second), &castdpb.StatusRequest{})
	if err != nil || st.GetStore() == nil {
		t.Errorf("Control/Status over the Unix socket = %v, %v; want it served", st, err)
	}
}
