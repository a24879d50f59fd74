package integration_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
)

// exitTimeout bounds how long a castd that must refuse to start may take.
const exitTimeout = 15 * time.Second

func TestDefaultStart(t *testing.T) {
	t.Log("`castd` with no config file and no flags must serve a local cache on the per-user socket, 0600, without TCP gRPC listeners")
	l := newLayout(t)
	// Only the metrics port is overridden (through the environment, as a
	// user could), so parallel test runs do not collide on the default.
	l.env = append(l.env, "CASTD_METRICS=127.0.0.1:0")
	p := startCastd(t, l, "")
	wantSocket := filepath.Join(l.base, "xrun", "castd", "castd.sock")
	wantStore := filepath.Join(l.base, "xcache", "castd")

	t.Run("ready line names socket and store", func(t *testing.T) {
		t.Log("the operator learns from one line where castd listens and stores")
		for _, want := range []string{"unix:" + wantSocket + " (mode 0600)", "store " + wantStore, "metrics http://127.0.0.1:"} {
			if !strings.Contains(p.ready, want) {
				t.Errorf("ready line %q lacks %q", p.ready, want)
			}
		}
	})
	t.Run("capabilities over unix socket", func(t *testing.T) {
		t.Log("Bazel 4.2 speaks REAPI 2.0 with SHA-256; newer clients need 2.3")
		caps, err := repb.NewCapabilitiesClient(dialUnix(t, wantSocket)).GetCapabilities(context.Background(), &repb.GetCapabilitiesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		checkCapabilities(t, caps)
	})
	t.Run("socket mode 0600", func(t *testing.T) {
		t.Log("the default socket is private to its user")
		checkSocketMode(t, wantSocket, 0o600)
	})
	t.Run("no tcp grpc listener", func(t *testing.T) {
		t.Log("no TCP listener unless configured: the only TCP socket is the loopback metrics endpoint")
		metricsHost := strings.TrimSuffix(strings.TrimPrefix(p.metricsURL(), "http://"), "/metrics")
		socks := tcpSocketsOf(t, p.cmd.Process.Pid)
		if !slices.Contains(socks, metricsHost) {
			t.Fatalf("TCP sockets %v do not include the metrics listener %s: the /proc scan is broken", socks, metricsHost)
		}
		for _, addr := range socks {
			if addr != metricsHost {
				t.Errorf("castd holds TCP socket %s; only the metrics listener %s is expected", addr, metricsHost)
			}
		}
	})
}

func checkCapabilities(t *testing.T, caps *repb.ServerCapabilities) {
	t.Helper()
	cc := caps.GetCacheCapabilities()
	if !slices.Contains(cc.GetDigestFunctions(), repb.DigestFunction_SHA256) {
		t.Errorf("digest functions %v lack SHA256", cc.GetDigestFunctions())
	}
	if lo := caps.GetLowApiVersion(); lo.GetMajor() != 2 || lo.GetMinor() != 0 {
		t.Errorf("low_api_version = %v, want 2.0", lo)
	}
	if hi := caps.GetHighApiVersion(); hi.GetMajor() != 2 || hi.GetMinor() < 3 {
		t.Errorf("high_api_version = %v, want >= 2.3", hi)
	}
}

func checkSocketMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != want {
		t.Errorf("%s mode = %v, want a socket with %04o", path, fi.Mode(), want)
	}
}

func TestSocketModeFromConfig(t *testing.T) {
	t.Log("a CI sidecar shares the socket with a group: socket-mode 0660 must be applied exactly")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML("socket-mode: \"0660\"\n"))
	checkSocketMode(t, p.socket, 0o660)
	if !strings.Contains(p.ready, "(mode 0660)") {
		t.Errorf("ready line %q does not report mode 0660", p.ready)
	}
}

func TestSocketOwnership(t *testing.T) {
	tests := []struct {
		name string
		why  string
		run  func(t *testing.T)
	}{
		{
			name: "stale socket removed",
			why:  "after kill -9 the old socket file stays; the next castd must start anyway",
			run: func(t *testing.T) {
				l := newLayout(t)
				if err := os.MkdirAll(filepath.Dir(l.socket), 0o700); err != nil {
					t.Fatal(err)
				}
				stale, err := net.Listen("unix", l.socket)
				if err != nil {
					t.Fatal(err)
				}
				stale.(*net.UnixListener).SetUnlinkOnClose(false)
				stale.Close()
				p := startCastd(t, l, l.configYAML(""))
				checkSocketMode(t, p.socket, 0o600)
			},
		},
		{
			name: "live socket not taken over",
			why:  "a second castd on the same socket path must not steal a running one's clients",
			run: func(t *testing.T) {
				first := newLayout(t)
				p1 := startCastd(t, first, first.configYAML(""))
				second := newLayout(t)
				second.socket = first.socket // different store, same socket
				p2 := spawnCastd(t, second, second.configYAML(""))
				if code := p2.wait(exitTimeout); code == 0 {
					t.Fatalf("second castd exited 0, want an error")
				}
				want := "another castd is serving on " + first.socket
				if !strings.Contains(p2.logs.String(), want) {
					t.Errorf("second castd's stderr lacks %q:\n%s", want, p2.logs.String())
				}
				p1.waitHealthy() // the first one still serves
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			tt.run(t)
		})
	}
}

func TestStoreLock(t *testing.T) {
	t.Log("one castd per store directory: the second says who holds it and exits at once")
	first := newLayout(t)
	p1 := startCastd(t, first, first.configYAML(""))
	second := newLayout(t)
	second.store = first.store // different socket, same store
	start := time.Now()
	p2 := spawnCastd(t, second, second.configYAML(""))
	code := p2.wait(exitTimeout)
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second castd took %v to give up; want at once", d)
	}
	out := p2.logs.String()
	for _, want := range []string{first.store, strconv.Itoa(p1.cmd.Process.Pid)} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Lstat(second.socket); !os.IsNotExist(err) {
		t.Errorf("the refused castd left its socket %s behind (%v)", second.socket, err)
	}
}

// badConfigs are invalid configuration files and what the error must name.
var badConfigs = []struct {
	name, why, yaml string
	wantLine        int
	wantKey         string
}{
	{
		name:     "unknown key",
		why:      "a typo must not be silently ignored",
		yaml:     "log-level: info\nsocket-mdoe: \"0600\"\n",
		wantLine: 2,
		wantKey:  "socket-mdoe",
	},
	{
		name:     "wrong type",
		why:      "a mapping where a list is expected is an error naming the key",
		yaml:     "log-level: info\nmetrics: 127.0.0.1:0\nlisten:\n  path: /tmp/x.sock\n",
		wantLine: 4,
		wantKey:  "listen",
	},
	{
		name:     "wrong scalar type",
		why:      "a list where a mode is expected names the key and its line",
		yaml:     "log-level: info\nsocket-mode: [1]\n",
		wantLine: 2,
		wantKey:  "socket-mode",
	},
}

func TestBadConfigFile(t *testing.T) {
	for _, tt := range badConfigs {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			l := newLayout(t)
			p := spawnCastd(t, l, tt.yaml)
			if code := p.wait(exitTimeout); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			out := p.logs.String()
			checkConfigError(t, out, l.config, tt.wantLine, tt.wantKey)
		})
	}
}

// checkConfigError asserts out names file:line (line within one, since a
// loader may point at the key or at its value) and the key.
func checkConfigError(t *testing.T, out, file string, line int, key string) {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(file) + `:(\d+)`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output does not name %s:LINE:\n%s", file, out)
	}
	if got, _ := strconv.Atoi(m[1]); got < line-1 || got > line {
		t.Errorf("error names line %d, want %d:\n%s", got, line, out)
	}
	if !strings.Contains(out, key) {
		t.Errorf("output does not name key %q:\n%s", key, out)
	}
}

func TestConfigCheck(t *testing.T) {
	l := newLayout(t)
	tests := []struct {
		name     string
		why      string
		yaml     string
		wantCode int
	}{
		{name: "valid", why: "a good config is confirmed with exit 0", yaml: l.configYAML("cache:\n  quota: 1G\n"), wantCode: 0},
		{name: badConfigs[0].name, why: "a bad config is exit 2 without starting anything", yaml: badConfigs[0].yaml, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			if err := os.WriteFile(l.config, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(castdBin, "config", "check", "--config", l.config)
			cmd.Env = l.env
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("castd config check exit = %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			if _, err := os.Stat(l.store); !os.IsNotExist(err) {
				t.Errorf("config check created the store %s", l.store)
			}
		})
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Log("operators scrape request counts by method and code from /metrics")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	conn := dialUnix(t, p.socket)
	ctx := context.Background()
	b := randomBlob(1000)
	if err := batchUpdate(ctx, conn, b); err != nil {
		t.Fatal(err)
	}
	if _, err := findMissing(ctx, conn, b.d); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, p.metricsURL())
	for _, want := range []string{
		`castd_grpc_requests_total{code="OK",method="/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs"} 1`,
		"castd_store_bytes ",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// capabilitiesOver asks for capabilities over conn.
func capabilitiesOver(conn *grpc.ClientConn) (*repb.ServerCapabilities, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return repb.NewCapabilitiesClient(conn).GetCapabilities(ctx, &repb.GetCapabilitiesRequest{})
}
