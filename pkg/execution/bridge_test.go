//lint:file-ignore SA1019 the client here speaks REAPI 2.0 on purpose

package execution_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/policy"
)

// upload20 stores a REAPI 2.0 action (outputs in output_files and
// output_directories only) in the node's CAS and returns its digest.
func (n *node) upload20(t *testing.T, script string, files, dirs []string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("input"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := localexec.UploadDir(ctx, n.mem, dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := &repb.Command{Arguments: []string{"/bin/sh", "-c", script}, OutputFiles: files, OutputDirectories: dirs}
	_, ad, err := localexec.UploadAction(ctx, n.mem, cmd, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

func TestBridgeREAPI20ToOutputPathsOnlyService(t *testing.T) {
	// Why: Bazel 4.2.3 sends 2.0 Commands; an execution service that reads
	// only output_paths (Buildbarn) would create no output directories and
	// lose every output. castd translates, and the client's digest hits next.
	cluster := newNode(t, setup{outputPathsOnly: true})
	ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster})
	ad := ws.upload20(t, "mkdir -p gen/sub && cat in.txt > out/a.txt && echo g > gen/sub/g && ln -s out/a.txt link",
		[]string{"link", "out/a.txt"}, []string{"gen"})

	resp, _, err := execute(t, ws.client, ad, false)
	mustSucceed(t, resp, err)
	wantMessage(t, resp, execution.MessageRemoteExecution)
	res := resp.GetResult()
	if len(res.GetOutputFiles()) != 1 || res.GetOutputFiles()[0].GetPath() != "out/a.txt" ||
		len(res.GetOutputDirectories()) != 1 || res.GetOutputDirectories()[0].GetPath() != "gen" {
		t.Fatalf("outputs %v %v, want out/a.txt and gen", res.GetOutputFiles(), res.GetOutputDirectories())
	}
	if l := res.GetOutputFileSymlinks(); len(l) != 1 || l[0].GetPath() != "link" || len(res.GetOutputSymlinks()) != 0 {
		t.Errorf("symlinks: file %v, 2.1 %v; want link in output_file_symlinks only", l, res.GetOutputSymlinks())
	}
	if got := cluster.runner.runs.Load(); got != 1 {
		t.Errorf("cluster runs = %d, want 1", got)
	}
	stored, err := ws.mem.GetActionResult(context.Background(), ad)
	if err != nil {
		t.Fatalf("result not recorded under the client's action digest: %v", err)
	}
	if len(stored.GetOutputFileSymlinks()) != 1 || len(stored.GetOutputSymlinks()) != 0 {
		t.Errorf("recorded result is not in the 2.0 dialect: %v", stored)
	}
	resp, _, err = execute(t, ws.client, ad, false)
	mustSucceed(t, resp, err)
	if !resp.GetCachedResult() || cluster.runner.runs.Load() != 1 {
		t.Errorf("second execute: cached_result %v, cluster runs %d; want true, 1", resp.GetCachedResult(), cluster.runner.runs.Load())
	}
}

func TestOutputPathsOnlyServiceRefuses20(t *testing.T) {
	// Why: the option makes castd behave as a 2.1+ service does, so the
	// bridge is tested against a real refusal; capabilities must say so.
	cluster := newNode(t, setup{outputPathsOnly: true})
	_, _, err := execute(t, cluster.client, cluster.upload20(t, "echo > f", []string{"f"}, nil), false)
	wantCode(t, err, codes.FailedPrecondition, "API version 2.0 is not supported")
	resp, _, err := execute(t, cluster.client, cluster.upload(t, "echo hi > out.txt", 0), false)
	mustSucceed(t, resp, err)
}

func TestBridgeImpossibleIsFailedPrecondition(t *testing.T) {
	// Why: a 2.0 Command capturing the whole working directory cannot be
	// said with output_paths; the client must hear the version gap.
	cluster := newNode(t, setup{outputPathsOnly: true})
	ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster})
	resp, _, err := execute(t, ws.client, ws.upload20(t, "true", nil, []string{""}), false)
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.FailedPrecondition || cluster.runner.runs.Load() != 0 ||
		!strings.Contains(resp.GetStatus().GetMessage(), "output_paths cannot express") {
		t.Fatalf("status %v, cluster runs %d; want FAILED_PRECONDITION, 0", resp.GetStatus(), cluster.runner.runs.Load())
	}
}

func TestBridgeImpossibleFallsBackLocally(t *testing.T) {
	// Why: with local-fallback a version gap is like an unsatisfiable
	// platform: the action runs here rather than failing.
	cluster := newNode(t, setup{outputPathsOnly: true})
	ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster,
		tweak: func(p *execution.Plan) { p.LocalFallback = true }})
	resp, _, err := execute(t, ws.client, ws.upload20(t, "echo x > f", nil, []string{""}), false)
	mustSucceed(t, resp, err)
	wantMessage(t, resp, execution.MessageLocalExecution)
	if got := [2]int64{cluster.runner.runs.Load(), ws.runner.runs.Load()}; got != [2]int64{0, 1} {
		t.Errorf("runs (cluster, workstation) = %v, want [0 1]", got)
	}
}
