package execution_test

import (
	"context"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/policy"
)

// inputDigests returns the digests of the Action's Command and input root
// and of the input file, read from n's store.
func inputDigests(t *testing.T, n *node, ad digest.Digest) []digest.Digest {
	t.Helper()
	a := &repb.Action{}
	readProto(t, n, ad, a)
	cd, _ := digest.FromProto(a.GetCommandDigest())
	rd, _ := digest.FromProto(a.GetInputRootDigest())
	dir := &repb.Directory{}
	readProto(t, n, rd, dir)
	fd, _ := digest.FromProto(dir.GetFiles()[0].GetDigest())
	return []digest.Digest{ad, cd, rd, fd}
}

func readProto(t *testing.T, n *node, d digest.Digest, m proto.Message) {
	t.Helper()
	rc, err := n.mem.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b := make([]byte, d.Size)
	if _, err := rc.Read(b); err != nil && d.Size > 0 {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
}

func TestScenarioRemoteExecution(t *testing.T) {
	t.Run("cluster runs it and the second execute is a cache hit", func(t *testing.T) {
		// Why: scenario 1 must run remotely, never locally, and record the result.
		cluster := newNode(t, setup{})
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster})
		ad := ws.upload(t, "cat in.txt > out.txt; echo hi", 0)
		inputs := inputDigests(t, ws, ad)
		if cluster.has(t, inputs...) {
			t.Fatal("cluster already holds the inputs")
		}
		resp, _, err := execute(t, ws.client, ad, false)
		mustSucceed(t, resp, err)
		if !cluster.has(t, inputs...) {
			t.Error("inputs were not uploaded to the cluster's CAS")
		}
		wantMessage(t, resp, execution.MessageRemoteExecution)
		if got, want := [2]int64{cluster.runner.runs.Load(), ws.runner.runs.Load()}, [2]int64{1, 0}; got != want {
			t.Errorf("runs (cluster, workstation) = %v, want %v", got, want)
		}
		resp, _, err = execute(t, ws.client, ad, false)
		mustSucceed(t, resp, err)
		if !resp.GetCachedResult() || cluster.runner.runs.Load() != 1 {
			t.Errorf("second execute: cached_result %v, cluster runs %d; want true, 1", resp.GetCachedResult(), cluster.runner.runs.Load())
		}
		// Outputs stay on the cluster until fetched, so the hit needs remote content.
		wantMessage(t, resp, execution.MessageRemoteCacheHit)
		if _, err := ws.mem.GetActionResult(context.Background(), ad); err != nil {
			t.Errorf("result not recorded in the local action cache: %v", err)
		}
	})
	for _, tc := range []struct {
		name     string
		why      string
		fallback bool
		wantCode codes.Code
		wantRuns int64
	}{
		{"cluster stopped with local fallback", "an unreachable execution service runs the action locally when allowed", true, codes.OK, 1},
		{"cluster stopped without local fallback", "without fallback the client learns the service is unavailable", false, codes.Unavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			cluster := newNode(t, setup{})
			ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster,
				tweak: func(p *execution.Plan) { p.LocalFallback = tc.fallback }})
			cluster.stop()
			resp, _, err := execute(t, ws.client, ws.upload(t, "echo local > out.txt", 0), false)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.wantCode {
				t.Fatalf("status %v (%s), want %v", got, resp.GetStatus().GetMessage(), tc.wantCode)
			}
			if got := ws.runner.runs.Load(); got != tc.wantRuns {
				t.Errorf("local runs = %d, want %d", got, tc.wantRuns)
			}
		})
	}
}

func TestScenarioRemoteExecutionPlatform(t *testing.T) {
	unsupported := func(p *repb.Platform) (string, bool) {
		for _, prop := range p.GetProperties() {
			if prop.GetName() == "OSFamily" && prop.GetValue() != "linux" {
				return "OSFamily=" + prop.GetValue(), true
			}
		}
		return "", false
	}
	windows := func(a *repb.Action) {
		a.Platform = &repb.Platform{Properties: []*repb.Platform_Property{{Name: "OSFamily", Value: "windows"}}}
	}
	t.Run("unsupported platform fails early", func(t *testing.T) {
		// Why: a platform the cluster cannot satisfy must fail before any upload, naming the property.
		cluster := newNode(t, setup{})
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster,
			tweak: func(p *execution.Plan) { p.UnsupportedPlatform = unsupported }})
		_, _, err := execute(t, ws.client, ws.upload(t, "true", 0, windows), false)
		wantCode(t, err, codes.FailedPrecondition, "OSFamily=windows")
		if cluster.runner.runs.Load()+ws.runner.runs.Load() != 0 {
			t.Error("the action ran")
		}
	})
	t.Run("unsupported platform with local fallback", func(t *testing.T) {
		// Why: with local fallback the action runs here instead of failing.
		cluster := newNode(t, setup{})
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster,
			tweak: func(p *execution.Plan) { p.UnsupportedPlatform, p.LocalFallback = unsupported, true }})
		resp, _, err := execute(t, ws.client, ws.upload(t, "echo x > out.txt", 0, windows), false)
		mustSucceed(t, resp, err)
		if ws.runner.runs.Load() != 1 || cluster.runner.runs.Load() != 0 {
			t.Errorf("runs (workstation, cluster) = %d, %d; want 1, 0", ws.runner.runs.Load(), cluster.runner.runs.Load())
		}
	})
}
