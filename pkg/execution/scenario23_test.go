package execution_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/policy"
)

// resultBlobs returns the stdout and output file digests of a result.
func resultDigests(t *testing.T, n *node, ad digest.Digest) []digest.Digest {
	t.Helper()
	ar, err := n.mem.GetActionResult(context.Background(), ad)
	if err != nil {
		t.Fatalf("no result for %s: %v", ad, err)
	}
	out, _ := digest.FromProto(ar.GetOutputFiles()[0].GetDigest())
	stdout, _ := digest.FromProto(ar.GetStdoutDigest())
	return []digest.Digest{out, stdout}
}

func TestScenarioRemoteCacheReadOnly(t *testing.T) {
	t.Run("remote hit served", func(t *testing.T) {
		// Why: scenario 2 reads the remote action cache; a hit there must not run anything.
		cache := newNode(t, setup{})
		ad := cache.upload(t, "echo cached > out.txt", 0)
		resp, _, err := execute(t, cache.client, ad, false) // fills the remote AC and CAS
		mustSucceed(t, resp, err)
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteCacheReadOnly, remote: cache})
		if ws.upload(t, "echo cached > out.txt", 0) != ad {
			t.Fatal("the same action has another digest on the workstation")
		}
		resp, _, err = execute(t, ws.client, ad, false)
		mustSucceed(t, resp, err)
		if !resp.GetCachedResult() || ws.runner.runs.Load() != 0 {
			t.Errorf("cached_result %v, local runs %d; want true, 0", resp.GetCachedResult(), ws.runner.runs.Load())
		}
		wantMessage(t, resp, execution.MessageRemoteCacheHit)
	})
	t.Run("miss runs locally and the remote action cache is unchanged", func(t *testing.T) {
		// Why: a read-only remote cache must never be written to.
		cache := newNode(t, setup{})
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteCacheReadOnly, remote: cache})
		ad := ws.upload(t, "echo local > out.txt", 0)
		resp, _, err := execute(t, ws.client, ad, false)
		mustSucceed(t, resp, err)
		if ws.runner.runs.Load() != 1 {
			t.Errorf("local runs = %d, want 1", ws.runner.runs.Load())
		}
		wantMessage(t, resp, execution.MessageLocalExecution)
		if _, err := cache.mem.GetActionResult(context.Background(), ad); status.Code(err) != codes.NotFound {
			t.Errorf("remote action cache: %v, want NOT_FOUND", err)
		}
		if _, err := ws.mem.GetActionResult(context.Background(), ad); err != nil {
			t.Errorf("local action cache: %v", err)
		}
	})
}

func TestScenarioRemoteCacheReadWrite(t *testing.T) {
	// Why: scenario 3 runs locally and records through Plan.LocalAC, which
	// queues the push in castd (pkg/proxy TestExecutionScenario3Push); the
	// Server itself writes no remote.
	cache := newNode(t, setup{})
	ws := newNode(t, setup{scenario: policy.ScenarioRemoteCacheReadWrite, remote: cache})
	ad := ws.upload(t, "echo shared > out.txt; echo stdout", 0)
	resp, _, err := execute(t, ws.client, ad, false)
	mustSucceed(t, resp, err)
	if ws.runner.runs.Load() != 1 || cache.runner.runs.Load() != 0 {
		t.Errorf("runs (workstation, cache) = %d, %d; want 1, 0", ws.runner.runs.Load(), cache.runner.runs.Load())
	}
	wantMessage(t, resp, execution.MessageLocalExecution)
	if _, err := ws.mem.GetActionResult(context.Background(), ad); err != nil {
		t.Errorf("LocalAC: %v, want the result", err)
	}
	if _, err := cache.mem.GetActionResult(context.Background(), ad); status.Code(err) != codes.NotFound {
		t.Errorf("remote action cache: %v, want NOT_FOUND (the push is LocalAC's job)", err)
	}
	if blobs := resultDigests(t, ws, ad); cache.has(t, blobs[0]) {
		t.Errorf("remote CAS holds the output %v; the Server pushed it itself", blobs[0])
	}
}
