package execution_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
)

// blake3Script writes an output file (from the input), an output
// directory with a nested file, and stdout.
const blake3Script = "cat in.txt > out.txt && mkdir -p gen/sub && echo g > gen/sub/g && echo hi"

// uploadIn stores a shell action hashed with fn throughout (input root,
// Command, Action) in the node's CAS and returns the Action's digest. The
// Command lists out.txt and gen in output_paths; edit, if not nil, changes
// it before it is stored.
func (n *node) uploadIn(t testing.TB, fn digest.Function, script string, edit func(*repb.Command)) digest.Digest {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("input of "+script), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := localexec.UploadDirIn(ctx, n.mem, fn, dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := &repb.Command{Arguments: []string{"/bin/sh", "-c", script}, OutputPaths: []string{"gen", "out.txt"}}
	if edit != nil {
		edit(cmd)
	}
	_, ad, err := localexec.UploadAction(ctx, n.mem, cmd, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ad.Func != fn {
		t.Fatalf("action digest %v is not of %s", ad, fn)
	}
	return ad
}

// speak20 makes a Command list its outputs in the REAPI 2.0 fields only.
func speak20(cmd *repb.Command) {
	//lint:ignore SA1019 the client speaks REAPI 2.0 on purpose
	cmd.OutputPaths, cmd.OutputFiles, cmd.OutputDirectories = nil, []string{"out.txt"}, []string{"gen"}
}

// executeIn runs Execute of ad with digest_function set to field (UNKNOWN:
// unset) and returns the final response; every operation's metadata must
// name ad's function.
func executeIn(t testing.TB, c repb.ExecutionClient, ad digest.Digest, field repb.DigestFunction_Value) (*repb.ExecuteResponse, error) {
	t.Helper()
	stream, err := c.Execute(testutil.Context(t), &repb.ExecuteRequest{ActionDigest: ad.Proto(), DigestFunction: field})
	if err != nil {
		return nil, err
	}
	for {
		op, err := stream.Recv()
		if err == io.EOF {
			t.Fatal("stream ended before the operation was done")
		}
		if err != nil {
			return nil, err
		}
		md := &repb.ExecuteOperationMetadata{}
		if err := op.GetMetadata().UnmarshalTo(md); err != nil || md.GetDigestFunction() != ad.Func.Proto() {
			t.Errorf("operation metadata digest_function %v, want %v (%v)", md.GetDigestFunction(), ad.Func.Proto(), err)
		}
		if op.GetDone() {
			if e := op.GetError(); e != nil {
				return nil, status.ErrorProto(e)
			}
			resp := &repb.ExecuteResponse{}
			if err := op.GetResponse().UnmarshalTo(resp); err != nil {
				t.Fatal(err)
			}
			return resp, nil
		}
	}
}

// blobIn reads d, a digest of fn, from the node's store.
func (n *node) blobIn(t testing.TB, fn digest.Function, d *repb.Digest) []byte {
	t.Helper()
	dg, err := digest.FromProtoIn(fn, d)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.ReadBytes(context.Background(), n.mem, dg)
	if err != nil {
		t.Fatalf("blob %s: %v", dg, err)
	}
	return b
}

// wantResultIn checks that every digest of res is the fn digest of the
// bytes n stores under it: out.txt, stdout, the Tree of gen and the
// Directory and file in it.
func wantResultIn(t testing.TB, n *node, fn digest.Function, res *repb.ActionResult) {
	t.Helper()
	check := func(what string, d *repb.Digest) []byte {
		t.Helper()
		b := n.blobIn(t, fn, d)
		if want := digest.OfBytesIn(fn, b); d.GetHash() != want.Hash || d.GetSizeBytes() != want.Size {
			t.Errorf("%s digest %s/%d, want the %s digest %s", what, d.GetHash(), d.GetSizeBytes(), fn, want)
		}
		return b
	}
	if len(res.GetOutputFiles()) != 1 || len(res.GetOutputDirectories()) != 1 {
		t.Fatalf("outputs %v %v, want out.txt and gen", res.GetOutputFiles(), res.GetOutputDirectories())
	}
	check("out.txt", res.GetOutputFiles()[0].GetDigest())
	if got := string(check("stdout", res.GetStdoutDigest())); got != "hi\n" {
		t.Errorf("stdout %q, want hi", got)
	}
	tree := &repb.Tree{}
	if err := proto.Unmarshal(check("tree of gen", res.GetOutputDirectories()[0].GetTreeDigest()), tree); err != nil {
		t.Fatal(err)
	}
	if sub := tree.GetRoot().GetDirectories(); len(sub) != 1 || len(tree.GetChildren()) != 1 {
		t.Fatalf("tree %v, want gen/sub", tree)
	}
	child, _ := proto.MarshalOptions{Deterministic: true}.Marshal(tree.GetChildren()[0])
	if d, want := tree.GetRoot().GetDirectories()[0].GetDigest(), digest.OfBytesIn(fn, child); d.GetHash() != want.Hash {
		t.Errorf("gen/sub digest %s, want the %s digest %s", d.GetHash(), fn, want)
	}
	check("gen/sub/g", tree.GetChildren()[0].GetFiles()[0].GetDigest())
}

func TestExecuteBLAKE3Locally(t *testing.T) {
	// Why: a BLAKE3 client (current Bazel with --digest_function=blake3)
	// asks by BLAKE3 digests only: every output must be stored and named
	// under BLAKE3, and its result cached under the BLAKE3 action digest,
	// where a SHA-256 client's lookup of the same hex never finds it.
	n := newNode(t, setup{})
	ad := n.uploadIn(t, digest.BLAKE3, blake3Script, nil)
	resp, err := executeIn(t, n.client, ad, repb.DigestFunction_BLAKE3)
	mustSucceed(t, resp, err)
	wantMessage(t, resp, execution.MessageLocalExecution)
	wantResultIn(t, n, digest.BLAKE3, resp.GetResult())

	ctx := context.Background()
	if _, err := n.mem.GetActionResult(ctx, ad); err != nil {
		t.Fatalf("result not cached under the BLAKE3 action digest: %v", err)
	}
	sha := digest.Digest{Hash: ad.Hash, Size: ad.Size}
	if _, err := n.mem.GetActionResult(ctx, sha); status.Code(err) != codes.NotFound {
		t.Fatalf("SHA-256 lookup of the same hex: %v, want NOT_FOUND", err)
	}
	resp, err = executeIn(t, n.client, ad, repb.DigestFunction_BLAKE3)
	mustSucceed(t, resp, err)
	if !resp.GetCachedResult() || n.runner.runs.Load() != 1 {
		t.Errorf("second BLAKE3 execute: cached_result %v, runs %d; want true, 1", resp.GetCachedResult(), n.runner.runs.Load())
	}
	// The same hex without digest_function is a SHA-256 action, absent.
	_, err = executeIn(t, n.client, sha, repb.DigestFunction_UNKNOWN)
	wantCode(t, err, codes.FailedPrecondition, sha.Hash)
	if n.runner.runs.Load() != 1 {
		t.Errorf("runs %d after the SHA-256 request, want 1", n.runner.runs.Load())
	}
}

func TestExecuteInfersDigestFunction(t *testing.T) {
	// Why: REAPI 2.3 lets a client leave digest_function unset when the
	// hash length names the function (SHA-1 is 40 characters); the whole
	// action is then read and hashed as SHA-1.
	n := newNode(t, setup{})
	ad := n.uploadIn(t, digest.SHA1, blake3Script, nil)
	resp, err := executeIn(t, n.client, ad, repb.DigestFunction_UNKNOWN)
	mustSucceed(t, resp, err)
	wantResultIn(t, n, digest.SHA1, resp.GetResult())
}

func TestExecuteRefusesUnservedDigestFunction(t *testing.T) {
	// Why: Config.DigestFunctions (cache.digest-functions) limits what is
	// served; Capabilities say so, and Execute must agree.
	n := newNode(t, setup{digestFunctions: digest.SetOf(digest.SHA256)})
	_, err := executeIn(t, n.client, n.uploadIn(t, digest.BLAKE3, "true", nil), repb.DigestFunction_BLAKE3)
	wantCode(t, err, codes.InvalidArgument, "digest_function")
	if n.runner.runs.Load() != 0 {
		t.Error("the action ran")
	}
}

func TestScenarioRemoteExecutionDigestFunction(t *testing.T) {
	t.Run("not sent to a service that does not offer it", func(t *testing.T) {
		// Why: a SHA-256-only execution service would read the BLAKE3
		// digests as SHA-256 ones (same length) and fail obscurely, or
		// worse; castd refuses up front, naming both sides.
		cluster := newNode(t, setup{digestFunctions: digest.SetOf(digest.SHA256)})
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster})
		ad := ws.uploadIn(t, digest.BLAKE3, blake3Script, nil)
		resp, err := executeIn(t, ws.client, ad, repb.DigestFunction_BLAKE3)
		if err != nil {
			t.Fatal(err)
		}
		st := resp.GetStatus()
		if codes.Code(st.GetCode()) != codes.FailedPrecondition || !strings.Contains(st.GetMessage(), "blake3") ||
			!strings.Contains(st.GetMessage(), "offers only sha256") {
			t.Fatalf("status %v %q, want FAILED_PRECONDITION naming blake3 and what the service offers", codes.Code(st.GetCode()), st.GetMessage())
		}
		if n := len(cluster.received.all()); n != 0 || cluster.runner.runs.Load()+ws.runner.runs.Load() != 0 {
			t.Errorf("cluster received %d Executes; runs %d, %d; want none", n, cluster.runner.runs.Load(), ws.runner.runs.Load())
		}
	})
	t.Run("runs locally with local fallback", func(t *testing.T) {
		// Why: with local-fallback, an action the service cannot take runs
		// here, as for a version gap, and is recorded under its BLAKE3 digest.
		cluster := newNode(t, setup{digestFunctions: digest.SetOf(digest.SHA256)})
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster,
			tweak: func(p *execution.Plan) { p.LocalFallback = true }})
		ad := ws.uploadIn(t, digest.BLAKE3, blake3Script, nil)
		resp, err := executeIn(t, ws.client, ad, repb.DigestFunction_BLAKE3)
		mustSucceed(t, resp, err)
		wantMessage(t, resp, execution.MessageLocalExecution)
		wantResultIn(t, ws, digest.BLAKE3, resp.GetResult())
		if got := [2]int64{cluster.runner.runs.Load(), ws.runner.runs.Load()}; got != [2]int64{0, 1} || len(cluster.received.all()) != 0 {
			t.Errorf("runs (cluster, workstation) = %v, cluster Executes %d; want [0 1], 0", got, len(cluster.received.all()))
		}
		if v := testutil.MetricValue(t, ws.reg, "castd_execution_local_fallback_total"); v != 1 {
			t.Errorf("fallbacks counted %v, want 1", v)
		}
		if _, err := ws.mem.GetActionResult(context.Background(), ad); err != nil {
			t.Errorf("result not recorded under the BLAKE3 action digest: %v", err)
		}
	})
	t.Run("the Command's platform is read in the action's function", func(t *testing.T) {
		// Why: a REAPI 2.0 client's platform is in its Command, which must be
		// found under its BLAKE3 digest for the platform check to see it.
		cluster := newNode(t, setup{})
		ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster,
			tweak: func(p *execution.Plan) {
				p.UnsupportedPlatform = func(*repb.Platform) (string, bool) { return "OSFamily=windows", true }
			}})
		ad := ws.uploadIn(t, digest.BLAKE3, "true", func(c *repb.Command) {
			//lint:ignore SA1019 REAPI 2.0 clients set only the Command's platform
			c.Platform = &repb.Platform{Properties: []*repb.Platform_Property{{Name: "OSFamily", Value: "windows"}}}
		})
		_, err := executeIn(t, ws.client, ad, repb.DigestFunction_BLAKE3)
		wantCode(t, err, codes.FailedPrecondition, "OSFamily=windows")
	})
	for _, tc := range []struct {
		name, why string
		fn        digest.Function
		field     repb.DigestFunction_Value // what the client sends
		edit      func(*repb.Command)
	}{
		{"sent with digest_function to a service that offers it", "the service must hear the function: BLAKE3 cannot be inferred",
			digest.BLAKE3, repb.DigestFunction_BLAKE3, nil},
		{"an inferred function is named to the service", "the client may leave SHA-1 to be inferred; castd names it rather than rely on the service inferring",
			digest.SHA1, repb.DigestFunction_UNKNOWN, nil},
		{"a bridged Command and Action are hashed with the action's function", "the service reads the bridged Action as a BLAKE3 digest",
			digest.BLAKE3, repb.DigestFunction_BLAKE3, speak20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			bridged := tc.edit != nil
			cluster := newNode(t, setup{outputPathsOnly: bridged})
			ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster})
			ad := ws.uploadIn(t, tc.fn, blake3Script, tc.edit)
			resp, err := executeIn(t, ws.client, ad, tc.field)
			mustSucceed(t, resp, err)
			wantMessage(t, resp, execution.MessageRemoteExecution)
			reqs := cluster.received.all()
			if len(reqs) != 1 || reqs[0].GetDigestFunction() != tc.fn.Proto() {
				t.Fatalf("cluster received %v, want one Execute with digest_function %v", reqs, tc.fn.Proto())
			}
			sent, err := digest.FromProtoIn(tc.fn, reqs[0].GetActionDigest())
			if err != nil {
				t.Fatal(err)
			}
			if bridged == (sent == ad) {
				t.Errorf("cluster was sent action %v (client's %v); bridged %v", sent, ad, bridged)
			}
			// The Action the cluster was sent is stored there under the
			// function, and so is its Command.
			a := &repb.Action{}
			if err := proto.Unmarshal(cluster.blobIn(t, tc.fn, sent.Proto()), a); err != nil {
				t.Fatal(err)
			}
			cmd := &repb.Command{}
			if err := proto.Unmarshal(cluster.blobIn(t, tc.fn, a.GetCommandDigest()), cmd); err != nil {
				t.Fatal(err)
			}
			if bridged && len(cmd.GetOutputPaths()) != 2 {
				t.Errorf("bridged Command output_paths %v, want gen and out.txt", cmd.GetOutputPaths())
			}
			wantResultIn(t, cluster, tc.fn, resp.GetResult())
			if _, err := ws.mem.GetActionResult(context.Background(), ad); err != nil {
				t.Errorf("result not recorded under the client's action digest: %v", err)
			}
		})
	}
}
