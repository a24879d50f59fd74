package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/castd/castd/pkg/policy"

	"github.com/castd/castd/pkg/store/disk"
)

func testConfig(t *testing.T) daemonConfig {
	t.Helper()
	dir := shortTempDir(t)
	return daemonConfig{
		listen:      []policy.Listener{{Scheme: "unix", Address: filepath.Join(dir, "castd.sock")}},
		socketMode:  0o600,
		metricsAddr: "127.0.0.1:0",
		storeDir:    filepath.Join(dir, "store"),
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStartDaemonFailureReleasesStore(t *testing.T) {
	tests := []struct {
		name    string
		why     string
		spoil   func(cfg *daemonConfig)
		wantErr string
	}{
		{
			name: "socket path taken by a file",
			why:  "a listener failing after the store opened must not leave the store locked",
			spoil: func(cfg *daemonConfig) {
				if err := os.WriteFile(cfg.listen[0].Address, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "not a socket",
		},
		{
			name:    "metrics address unusable",
			why:     "the last start step failing must close the sockets and the store opened before it",
			spoil:   func(cfg *daemonConfig) { cfg.metricsAddr = "256.0.0.1:0" },
			wantErr: "metrics listener",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			cfg := testConfig(t)
			tt.spoil(&cfg)
			_, err := startDaemon(cfg, quietLogger())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("startDaemon error = %v, want %q", err, tt.wantErr)
			}
			s, err := disk.Open(cfg.storeDir, disk.Options{})
			if err != nil {
				t.Fatalf("store still locked after failed start: %v", err)
			}
			s.Close()
			if tt.wantErr != "not a socket" {
				if _, err := os.Lstat(cfg.listen[0].Address); !os.IsNotExist(err) {
					t.Errorf("socket left behind after failed start (%v)", err)
				}
			}
		})
	}
}

func TestRunStopsOnSignal(t *testing.T) {
	t.Log("SIGTERM stops the server, removes the socket and releases the store, in that order")
	cfg := testConfig(t)
	d, err := startDaemon(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- d.run(sigs, nil) }()

	conn, err := grpc.NewClient("unix:"+cfg.listen[0].Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := repb.NewCapabilitiesClient(conn).GetCapabilities(ctx, &repb.GetCapabilitiesRequest{}); err != nil {
		t.Fatalf("serving before the signal: %v", err)
	}

	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v", err)
		}
	case <-time.After(drainTimeout + 5*time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	if _, err := os.Lstat(cfg.listen[0].Address); !os.IsNotExist(err) {
		t.Errorf("socket still present after shutdown (%v)", err)
	}
	s, err := disk.Open(cfg.storeDir, disk.Options{})
	if err != nil {
		t.Fatalf("store not released after shutdown: %v", err)
	}
	s.Close()
}

func TestOpenMetrics(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name       string
		why        string
		addr       string
		explicit   bool
		wantServer bool
		wantErr    bool
	}{
		{name: "disabled", why: "an empty address turns metrics off", addr: ""},
		{name: "free port", why: "port 0 binds and is reported", addr: "127.0.0.1:0", explicit: true, wantServer: true},
		{name: "default port busy", why: "a second castd on the same machine must still start without config", addr: busy.Addr().String()},
		{name: "chosen port busy", why: "an address the user asked for that cannot be bound is an error", addr: busy.Addr().String(), explicit: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			m, err := openMetrics(daemonConfig{metricsAddr: tt.addr, metricsExplicit: tt.explicit}, newRegistry(), quietLogger())
			if (err != nil) != tt.wantErr {
				t.Fatalf("openMetrics error = %v, want error %v", err, tt.wantErr)
			}
			if (m != nil) != tt.wantServer {
				t.Fatalf("metrics server = %v, want one: %v", m, tt.wantServer)
			}
			if m != nil {
				if !strings.HasPrefix(m.url, "http://127.0.0.1:") || strings.HasSuffix(m.url, ":0/metrics") {
					t.Errorf("url = %s, want the bound loopback port", m.url)
				}
				if err := m.Close(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
