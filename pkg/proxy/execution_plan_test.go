package proxy_test

import (
	"context"
	"fmt"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/policy"
)

func TestExecutionPlan(t *testing.T) {
	cluster, cache := newUpstream(t), newUpstream(t)
	set, _ := newSet(t, t.TempDir(), fmt.Sprintf(`
remote-platform: {OSFamily: [linux]}
local-execution: {local-fallback: true}
remote-execution:
  action-cache-service: {url: %[2]s, push: false}
  storage-service: {url: %[2]s}
projects:
  rex:
    remote-execution:
      execution-service: {url: %[1]s, instance-name: cluster}
      storage-service: {url: %[1]s, instance-name: cluster}
  rw:
    remote-execution:
      action-cache-service: {url: %[2]s, push: true}
      storage-service: {url: %[2]s}
`, cluster.url, cache.url))
	ctx := context.Background()
	cases := []struct {
		name, instance string
		want           policy.Scenario
		remoteExec     bool
	}{
		// The global block has a read-only action cache: scenario 2, nothing remote to write.
		{"global read-only cache", "", policy.ScenarioRemoteCacheReadOnly, false},
		// A per-project block replaces the global one, at execution time.
		{"project remote execution", "rex", policy.ScenarioRemoteExecution, true},
		{"project read-write cache", "rw", policy.ScenarioRemoteCacheReadWrite, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := set.ExecutionPlan(ctx, tc.instance)
			if err != nil {
				t.Fatal(err)
			}
			if p.Scenario != tc.want {
				t.Fatalf("scenario %v, want %v", p.Scenario, tc.want)
			}
			if (p.RemoteExec != nil) != tc.remoteExec || (p.RemoteCAS != nil) != tc.remoteExec {
				t.Fatalf("remote exec %v / CAS %v, want both %v", p.RemoteExec != nil, p.RemoteCAS != nil, tc.remoteExec)
			}
			if tc.remoteExec && p.RemoteInstance != "cluster" {
				t.Fatalf("remote instance %q, want the execution-service's own", p.RemoteInstance)
			}
			// The execution service never writes a remote action cache itself;
			// pushes go through the durable queue behind LocalAC (see
			// TestExecutionScenario3Push).
			if p.LocalAC == nil || p.LocalCAS == nil || !p.LocalFallback {
				t.Fatalf("plan %+v", p)
			}
		})
	}

	t.Run("unknown instance", func(t *testing.T) {
		// Run-time instance names must be registered first.
		if _, err := set.ExecutionPlan(ctx, "p/nope-1"); err == nil {
			t.Fatal("plan for an unknown instance")
		}
	})

	t.Run("platform check", func(t *testing.T) {
		// remote-platform names what the service satisfies; other values fail early, unlisted names pass.
		p, _ := set.ExecutionPlan(ctx, "rex")
		prop := func(kv ...string) *repb.Platform {
			pl := &repb.Platform{}
			for i := 0; i < len(kv); i += 2 {
				pl.Properties = append(pl.Properties, &repb.Platform_Property{Name: kv[i], Value: kv[i+1]})
			}
			return pl
		}
		if got, bad := p.UnsupportedPlatform(prop("OSFamily", "windows")); !bad || got != "OSFamily=windows" {
			t.Fatalf("windows: %q %v", got, bad)
		}
		if _, bad := p.UnsupportedPlatform(prop("OSFamily", "linux", "pool", "big")); bad {
			t.Fatal("linux with an unlisted property reported unsupported")
		}
	})
}
