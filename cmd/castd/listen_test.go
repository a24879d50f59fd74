package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

// shortTempDir returns a directory with a path short enough for a Unix
// socket, removed when t ends.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "castd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenUnix(t *testing.T) {
	tests := []struct {
		name    string
		why     string
		prepare func(t *testing.T, path string) // set up what is at path before listening
		mode    os.FileMode
		wantErr string // "" means listening succeeds
	}{
		{
			name: "fresh path in missing directory",
			why:  "the socket directory is created 0700 and the socket gets the default mode",
			mode: 0o600,
		},
		{
			name: "group mode",
			why:  "a CI sidecar shares the socket with a group",
			mode: 0o660,
		},
		{
			name: "stale socket",
			why:  "a castd killed with -9 leaves its socket; the next one must start",
			prepare: func(t *testing.T, path string) {
				l := listenRaw(t, path)
				l.(*net.UnixListener).SetUnlinkOnClose(false)
				l.Close()
			},
			mode: 0o600,
		},
		{
			name: "live socket",
			why:  "a running server is never taken over",
			prepare: func(t *testing.T, path string) {
				l := listenRaw(t, path)
				t.Cleanup(func() { l.Close() })
			},
			mode:    0o600,
			wantErr: "another castd is serving on",
		},
		{
			name: "regular file",
			why:  "castd never deletes a file it did not create",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			mode:    0o600,
			wantErr: "not a socket",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			path := filepath.Join(shortTempDir(t), "run", "castd.sock")
			if tt.prepare != nil {
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				tt.prepare(t, path)
			}
			l, err := listenUnix(path, tt.mode)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("listenUnix error = %v, want one containing %q and the path", err, tt.wantErr)
				}
				if _, statErr := os.Lstat(path); statErr != nil {
					t.Fatalf("existing %s was removed: %v", path, statErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("listenUnix: %v", err)
			}
			defer l.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tt.mode {
				t.Errorf("socket mode = %v, want socket with %04o", fi.Mode(), tt.mode)
			}
			di, err := os.Stat(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			if tt.prepare == nil && di.Mode().Perm() != 0o700 {
				t.Errorf("created socket directory mode = %04o, want 0700", di.Mode().Perm())
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial new socket: %v", err)
			}
			c.Close()
		})
	}
}

func listenRaw(t *testing.T, path string) net.Listener {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestOpenListeners(t *testing.T) {
	dir := shortTempDir(t)
	tests := []struct {
		name     string
		why      string
		specs    []policy.Listener
		wantDesc []string // substrings of the log description, in order
		wantErr  string
	}{
		{
			name:     "unix and tcp port 0",
			why:      "port 0 must be reported as the bound port so clients (and tests) can find it",
			specs:    []policy.Listener{{Scheme: "unix", Address: filepath.Join(dir, "a.sock")}, {Scheme: "grpc", Address: "127.0.0.1:0"}},
			wantDesc: []string{"unix:" + filepath.Join(dir, "a.sock") + " (mode 0600)", "grpc://127.0.0.1:"},
		},
		{
			name:    "grpcs without certificate",
			why:     "a TLS listener without a key pair is a configuration mistake, not a plaintext fallback",
			specs:   []policy.Listener{{Scheme: "grpcs", Address: "127.0.0.1:0"}},
			wantErr: "server-cert",
		},
		{
			name:    "nothing configured",
			why:     "a daemon nobody can reach is an error",
			wantErr: "no listeners",
		},
		{
			name: "second fails, first closed",
			why:  "a failed start must leave no socket behind",
			specs: []policy.Listener{
				{Scheme: "unix", Address: filepath.Join(dir, "b.sock")},
				{Scheme: "grpc", Address: "256.0.0.1:0"},
			},
			wantErr: "listen grpc://256.0.0.1:0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			ls, err := openListeners(tt.specs, listenOptions{socketMode: 0o600})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				for _, s := range tt.specs {
					if s.Scheme == "unix" {
						if _, err := os.Lstat(s.Address); !os.IsNotExist(err) {
							t.Errorf("socket %s left behind after failed start (%v)", s.Address, err)
						}
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeListeners(ls)
			desc := describeListeners(ls)
			for _, want := range tt.wantDesc {
				if !strings.Contains(desc, want) {
					t.Errorf("description %q lacks %q", desc, want)
				}
			}
			if strings.Contains(desc, ":0,") || strings.HasSuffix(desc, ":0") {
				t.Errorf("description %q reports port 0 instead of the bound port", desc)
			}
		})
	}
}
