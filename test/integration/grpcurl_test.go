package integration_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// findGrpcurl returns grpcurl from PATH or from `go install`'s directory.
func findGrpcurl(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "grpcurl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("grpcurl not found in PATH or $(go env GOPATH)/bin " +
		"(go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest)")
	return ""
}

// grpcurl runs grpcurl against the socket with args and returns stdout.
func grpcurl(t *testing.T, bin, socket string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-plaintext", "-unix", socket}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grpcurl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func TestGrpcurl(t *testing.T) {
	bin := findGrpcurl(t)
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	cases := []struct {
		name  string
		why   string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"list through reflection", "a user with only grpcurl discovers what castd serves, no .proto files needed",
			[]string{"list"}, func(t *testing.T, out string) {
				services := strings.Fields(out)
				for _, want := range []string{
					"build.bazel.remote.execution.v2.Capabilities",
					"build.bazel.remote.execution.v2.ContentAddressableStorage",
					"build.bazel.remote.execution.v2.ActionCache",
					"build.bazel.remote.execution.v2.Execution",
					"build.bazel.remote.asset.v1.Fetch",
					"build.bazel.remote.asset.v1.Push",
					"google.bytestream.ByteStream",
					"grpc.health.v1.Health",
				} {
					if !slices.Contains(services, want) {
						t.Errorf("grpcurl list lacks %s; got %v", want, services)
					}
				}
			}},
		{"capabilities as JSON", "clients negotiate the digest function and API version from GetCapabilities",
			[]string{"build.bazel.remote.execution.v2.Capabilities/GetCapabilities"}, func(t *testing.T, out string) {
				var caps struct {
					CacheCapabilities struct {
						DigestFunctions []string `json:"digestFunctions"`
					} `json:"cacheCapabilities"`
					LowAPIVersion  struct{ Major, Minor int } `json:"lowApiVersion"`
					HighAPIVersion struct{ Major, Minor int } `json:"highApiVersion"`
				}
				if err := json.Unmarshal([]byte(out), &caps); err != nil {
					t.Fatalf("GetCapabilities JSON: %v\n%s", err, out)
				}
				if !slices.Contains(caps.CacheCapabilities.DigestFunctions, "SHA256") {
					t.Errorf("digest functions %v lack SHA256", caps.CacheCapabilities.DigestFunctions)
				}
				if caps.LowAPIVersion.Major != 2 || caps.HighAPIVersion.Major != 2 {
					t.Errorf("API versions %+v..%+v, want 2.x", caps.LowAPIVersion, caps.HighAPIVersion)
				}
			}},
		{"health check", "monitoring and CI scripts probe castd with the standard health service",
			[]string{"grpc.health.v1.Health/Check"}, func(t *testing.T, out string) {
				var h struct{ Status string }
				if err := json.Unmarshal([]byte(out), &h); err != nil {
					t.Fatalf("Health/Check JSON: %v\n%s", err, out)
				}
				if h.Status != "SERVING" {
					t.Errorf("health status %q, want SERVING", h.Status)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			tc.check(t, grpcurl(t, bin, p.socket, tc.args...))
		})
	}
}
