package integration_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
)

// The execution tests run two real castd processes: a "cluster" on TCP
// that executes locally (no remote-execution block) and a "workstation" on
// a Unix socket configured with the cluster as its execution service
// (scenario 1) or its remote action cache (scenarios 2 and 3), and drive
// the workstation with a REAPI client and bst (DESIGN §4).

// copyAction copies its input to out.txt; its output is the input.
func copyAction(content string) testAction {
	return testAction{script: "cat in.txt > out.txt", inputs: map[string]string{"in.txt": content}, outputs: []string{"out.txt"}}
}

func TestExecutionScenario1(t *testing.T) {
	c := startCluster(t)
	// The inputs go into the workstation's store while it has no remotes,
	// so that nothing but the Execute can bring them to the cluster (in
	// scenario 1 a write would also be queued for the storage service).
	l := newLayout(t)
	seed := startCastd(t, l, l.configYAML(""))
	content := "scenario 1 input " + l.base + "\n"
	a := newREClient(t, seed.socket).upload(t, copyAction(content))
	seed.stop()
	ws := startCastd(t, l, l.configYAML(scenario1YAML(c.addr, false)))
	re := newREClient(t, ws.socket)
	ctx := ctxFor(t, execTimeout)

	var first execOutcome
	t.Run("inputs missing from the cluster are uploaded first", func(t *testing.T) {
		t.Log("the cluster can only run what is in its own CAS, so the workstation uploads the Action, Command and inputs before Execute")
		if n := c.re.missing(t, a.blobs...); n != len(a.blobs) {
			t.Fatalf("before Execute the cluster lacks %d of the %d input blobs, want all", n, len(a.blobs))
		}
		first = re.execute(ctx, a.digest)
		first.ok(t, "remote execution")
		if n := c.re.missing(t, a.blobs...); n != 0 {
			t.Errorf("after Execute the cluster still lacks %d of the %d input blobs", n, len(a.blobs))
		}
		if got := first.output(t, "out.txt"); !proto.Equal(got, blobOf([]byte(content)).d) {
			t.Errorf("out.txt = %v, want the input's digest", got)
		}
	})
	t.Run("the cluster runs it", func(t *testing.T) {
		t.Log("in scenario 1 the cluster executes the action and the workstation only forwards it")
		if got := executions(t, c.castdProc, "local"); got != 1 {
			t.Errorf("cluster ran %d actions locally, want 1", got)
		}
		if got := executions(t, ws, "remote"); got != 1 {
			t.Errorf("workstation forwarded %d actions, want 1", got)
		}
		if got := executions(t, ws, "local"); got != 0 {
			t.Errorf("workstation ran %d actions itself, want 0", got)
		}
	})
	t.Run("second execute is a cache hit", func(t *testing.T) {
		t.Log("the remotely executed result was recorded, so the same action is served from cache without reaching the cluster's executor")
		second := re.execute(ctx, a.digest)
		second.ok(t, "")
		if !second.resp.GetCachedResult() || !strings.Contains(second.resp.GetMessage(), "cache hit") {
			t.Errorf("second Execute: %v; want a cache hit", second)
		}
		if !proto.Equal(second.output(t, "out.txt"), first.output(t, "out.txt")) {
			t.Error("the cached result differs from the executed one")
		}
		if got := executions(t, c.castdProc, "local"); got != 1 {
			t.Errorf("cluster ran %d actions locally after the cache hit, want still 1", got)
		}
	})
	t.Run("concurrent identical executes run once on the cluster", func(t *testing.T) {
		t.Log("identical Executes share one workstation operation, so the cluster is sent the action once")
		before := executions(t, ws, "remote")
		runsOnce(t, ctx, re, "remote execution")
		if n := executions(t, ws, "remote") - before; n != 1 {
			t.Errorf("workstation forwarded %d executions for one shared operation, want 1", n)
		}
	})
	t.Run("bst run executes on the cluster", func(t *testing.T) {
		t.Log("bst run through the workstation's socket sends the action to the cluster, and the rerun is a cache hit")
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "in.txt"), []byte("bst "+l.base+"\n"))
		args := []string{"run", "--output", "out.txt", "--", "sh", "-c", "tr a-z A-Z < in.txt > out.txt"}
		r := bst(t, ws.socket, dir, args...)
		requireServed(t, r, "Execution")
		if r.code != 0 || !strings.Contains(r.stderr, "remote execution") {
			t.Fatalf("bst run: exit %d, stderr %q; want 0 and remote execution", r.code, r.stderr)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(data) != strings.ToUpper("bst "+l.base+"\n") {
			t.Errorf("out.txt = %q", data)
		}
		if got := executions(t, c.castdProc, "local"); got != 3 {
			t.Errorf("cluster ran %d actions, want 3 (two from the Go client, one from bst)", got)
		}
		if r := mustBst(t, ws.socket, dir, args...); !strings.Contains(r.stderr, "cache hit") {
			t.Errorf("second bst run: stderr %q; want a cache hit", r.stderr)
		}
	})
}

func TestExecutionScenario1ClusterKilled(t *testing.T) {
	cases := []struct {
		name     string
		why      string
		fallback bool
	}{
		{"fallback on runs locally", "with local-fallback an execution service that dies mid-run is replaced by a local run", true},
		{"fallback off fails unavailable", "without local-fallback a dead execution service is an UNAVAILABLE result and nothing is cached", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			c := startCluster(t)
			l := newLayout(t)
			ws := startCastd(t, l, l.configYAML(scenario1YAML(c.addr, tc.fallback)))
			re := newREClient(t, ws.socket)
			g := newGate(t)
			a := re.upload(t, testAction{script: g.script() + "; echo done > out.txt", outputs: []string{"out.txt"}})
			ctx := ctxFor(t, execTimeout)
			done := make(chan execOutcome, 1)
			go func() { done <- re.execute(ctx, a.digest) }()

			g.waitRuns(t, 1) // the cluster runs it
			c.kill9()
			g.open(t) // too late for the cluster; a local run passes at once
			var got execOutcome
			select {
			case got = <-done:
			case <-ctx.Done():
				t.Fatal("Execute did not finish after the cluster was killed")
			}

			if tc.fallback {
				got.ok(t, "local execution")
				if n := g.runs(t); n != 2 {
					t.Errorf("the action ran %d times, want 2 (cluster, then locally)", n)
				}
				if n := executions(t, ws, "fallback"); n != 1 {
					t.Errorf("workstation counted %d fallbacks, want 1", n)
				}
				return
			}
			if got.code() != codes.Unavailable {
				t.Fatalf("want UNAVAILABLE, got %v", got)
			}
			if n := g.runs(t); n != 1 {
				t.Errorf("the action ran %d times, want only the cluster's run", n)
			}
			// Nothing cached locally; the only remote action cache (the
			// dead cluster's) cannot answer, so the lookup keeps its
			// UNAVAILABLE rather than reporting a miss.
			if _, err := re.actionResult(ctx, a.digest); status.Code(err) != codes.Unavailable {
				t.Errorf("workstation action cache after the failure: %v, want UNAVAILABLE (no local result, the cluster's cache down)", err)
			}
		})
	}
}

func TestExecutionScenario2(t *testing.T) {
	c := startCluster(t)
	l := newLayout(t)
	ws, _, ctl := startWorkstation(t, l, remoteCacheYAML(c.addr, false))
	re := newREClient(t, ws.socket)
	ctx := ctxFor(t, execTimeout)

	t.Run("capabilities and UpdateActionResult agree", func(t *testing.T) {
		t.Log("castd's local action cache takes a client's results even when the remote cache is read-only (castd keeps them off the remote), so Capabilities says update_enabled")
		caps, err := repb.NewCapabilitiesClient(re.conn).GetCapabilities(ctx, &repb.GetCapabilitiesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, uerr := repb.NewActionCacheClient(re.conn).UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
			ActionDigest: digest.OfBytes([]byte("scenario 2 client result " + l.base)).Proto(), ActionResult: &repb.ActionResult{}})
		if got := caps.GetCacheCapabilities().GetActionCacheUpdateCapabilities().GetUpdateEnabled(); !got || uerr != nil {
			t.Errorf("update_enabled %v, UpdateActionResult %v; want true and accepted", got, uerr)
		}
	})
	t.Run("remote hit served", func(t *testing.T) {
		t.Log("a result already in the remote action cache is served, not re-run")
		// Populate the cluster's action cache by executing there directly.
		a := c.re.upload(t, copyAction("scenario 2 hit "+l.base))
		direct := c.re.execute(ctx, a.digest)
		direct.ok(t, "local execution")
		got := re.execute(ctx, a.digest)
		got.ok(t, "remote cache hit")
		if !got.resp.GetCachedResult() || !proto.Equal(got.output(t, "out.txt"), direct.output(t, "out.txt")) {
			t.Errorf("workstation: %v; want the cluster's result, cached", got)
		}
		if n := executions(t, ws, "local"); n != 0 {
			t.Errorf("workstation ran %d actions, want 0", n)
		}
		if n := executions(t, c.castdProc, "local"); n != 1 {
			t.Errorf("cluster ran %d actions, want only the direct one", n)
		}
	})
	t.Run("miss runs locally and the remote AC is unchanged", func(t *testing.T) {
		t.Log("scenario 2 reads the remote cache but never writes it: a miss runs on the workstation and stays local")
		a := re.upload(t, copyAction("scenario 2 miss "+l.base))
		re.execute(ctx, a.digest).ok(t, "local execution")
		if n := executions(t, ws, "local"); n != 1 {
			t.Errorf("workstation ran %d actions, want 1", n)
		}
		// Results are queued for the remote when recorded, before the
		// operation completes: an empty, never-used queue means no push.
		if q := ctlStatus(t, ctl).GetQueue(); q.GetDepth() != 0 || q.GetCompleted() != 0 {
			t.Errorf("write-back queue depth %d, completed %d; want nothing queued", q.GetDepth(), q.GetCompleted())
		}
		if _, err := c.re.actionResult(ctx, a.digest); !isNotFound(err) {
			t.Errorf("cluster action cache: %v, want NOT_FOUND", err)
		}
		if _, err := re.actionResult(ctx, a.digest); err != nil {
			t.Errorf("workstation action cache: %v, want the local result", err)
		}
	})
}

func TestExecutionScenario3(t *testing.T) {
	c := startCluster(t)
	cfg := remoteCacheYAML(c.addr, true)
	l := newLayout(t)
	ws, _, _ := startWorkstation(t, l, cfg)
	re := newREClient(t, ws.socket)
	ctx := ctxFor(t, 3*execTimeout)

	content := "scenario 3 " + l.base
	a := re.upload(t, copyAction(content))
	var first execOutcome
	t.Run("miss runs locally", func(t *testing.T) {
		t.Log("scenario 3 has no execution service: a miss runs on the workstation")
		first = re.execute(ctx, a.digest)
		first.ok(t, "local execution")
		if n := executions(t, ws, "local"); n != 1 {
			t.Errorf("workstation ran %d actions, want 1", n)
		}
		if n := executions(t, c.castdProc, "local"); n != 0 {
			t.Errorf("cluster ran %d actions, want 0", n)
		}
	})
	t.Run("remote AC and CAS hold the result", func(t *testing.T) {
		t.Log("with push the result reaches the remote cache through the write-back queue: outputs first, then the entry")
		testutil.EventuallyWithin(t, execTimeout, "the result in the cluster's action cache", func() bool {
			_, err := c.re.actionResult(ctx, a.digest)
			return err == nil
		})
		res, err := c.re.actionResult(ctx, a.digest)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(res.GetOutputFiles()[0].GetDigest(), first.output(t, "out.txt")) {
			t.Errorf("cluster result %v differs from the workstation's", res)
		}
		refs := []*repb.Digest{first.output(t, "out.txt")}
		for _, d := range []*repb.Digest{res.GetStdoutDigest(), res.GetStderrDigest()} {
			if d.GetSizeBytes() > 0 {
				refs = append(refs, d)
			}
		}
		if n := c.re.missing(t, append(refs, a.blobs[:2]...)...); n != 0 {
			t.Errorf("the cluster's CAS lacks %d of the result's blobs, Action and Command", n)
		}
	})
	t.Run("second workstation gets a remote hit", func(t *testing.T) {
		t.Log("a fresh workstation with the same remote cache is served the pushed result without running anything")
		l2 := newLayout(t)
		ws2, _, _ := startWorkstation(t, l2, cfg)
		got := newREClient(t, ws2.socket).execute(ctx, a.digest)
		got.ok(t, "remote cache hit")
		if !got.resp.GetCachedResult() || !proto.Equal(got.output(t, "out.txt"), first.output(t, "out.txt")) {
			t.Errorf("second workstation: %v", got)
		}
		if n := executions(t, ws2, "local"); n != 0 {
			t.Errorf("second workstation ran %d actions, want 0", n)
		}
	})
	t.Run("failure not cached", func(t *testing.T) {
		t.Log("a non-zero exit is never cached, so the same action runs again")
		g := newGate(t)
		f := re.upload(t, testAction{script: g.count() + "; exit 1"})
		for i := range 2 {
			got := re.execute(ctx, f.digest)
			if got.code() != codes.OK || got.resp.GetResult().GetExitCode() != 1 || got.resp.GetCachedResult() {
				t.Fatalf("Execute %d: %v; want exit 1, not cached", i+1, got)
			}
		}
		if n := g.runs(t); n != 2 {
			t.Errorf("the failing action ran %d times, want 2", n)
		}
		if _, err := re.actionResult(ctx, f.digest); !isNotFound(err) {
			t.Errorf("workstation action cache: %v, want NOT_FOUND", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Log("an action running past its timeout ends with DEADLINE_EXCEEDED and is not cached")
		g := newGate(t)
		d := re.upload(t, testAction{script: g.script(), timeout: time.Second})
		got := re.execute(ctx, d.digest)
		if got.code() != codes.DeadlineExceeded || got.err != nil {
			t.Fatalf("want DEADLINE_EXCEEDED in the response status, got %v", got)
		}
		if _, err := re.actionResult(ctx, d.digest); !isNotFound(err) {
			t.Errorf("workstation action cache: %v, want NOT_FOUND", err)
		}
	})
	t.Run("concurrent identical executes run once", func(t *testing.T) {
		t.Log("identical Executes arriving while the action runs join its operation instead of running it again")
		runsOnce(t, ctx, re, "local execution")
	})
	t.Run("WaitExecution after a dropped stream", func(t *testing.T) {
		t.Log("an execution outlives its caller's stream, and WaitExecution on the operation name gets the final result")
		g := newGate(t)
		d := re.upload(t, testAction{script: g.script() + "; echo resumed"})
		sctx, cancel := context.WithCancel(ctx)
		_, name, err := re.started(sctx, d.digest)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		g.waitRuns(t, 1)
		cancel() // the client goes away mid-run
		g.open(t)
		got := re.wait(ctx, name)
		got.ok(t, "local execution")
		if got.name != name || !proto.Equal(got.resp.GetResult().GetStdoutDigest(), blobOf([]byte("resumed\n")).d) {
			t.Errorf("WaitExecution: %v, stdout %v; want operation %q and stdout \"resumed\"", got, got.resp.GetResult().GetStdoutDigest(), name)
		}
		if runs := g.runs(t); runs != 1 {
			t.Errorf("the action ran %d times, want 1 (the dropped stream must not restart it)", runs)
		}
	})
}

// runsOnce sends 8 identical Executes for an action that waits until all
// of them hold an operation, and checks that they joined one operation,
// that the action ran once and that every caller got its result, obtained
// how.
func runsOnce(t *testing.T, ctx context.Context, re *reClient, how string) {
	t.Helper()
	g := newGate(t)
	d := re.upload(t, testAction{script: g.script() + "; echo shared > out.txt", outputs: []string{"out.txt"}})
	const n = 8
	names := make([]string, n)
	outcomes := make([]execOutcome, n)
	var joined, finished sync.WaitGroup
	joined.Add(n)
	for i := range n {
		finished.Go(func() {
			stream, name, err := re.started(ctx, d.digest)
			names[i] = name
			joined.Done()
			if err != nil {
				outcomes[i] = execOutcome{name: name, err: err}
				return
			}
			outcomes[i] = follow(stream, name)
		})
	}
	joined.Wait() // every call holds an operation; the action cannot have finished
	g.open(t)
	finished.Wait()
	for i, o := range outcomes {
		o.ok(t, how)
		if names[i] != names[0] {
			t.Errorf("call %d joined operation %q, call 0 %q", i, names[i], names[0])
		}
	}
	if runs := g.runs(t); runs != 1 {
		t.Errorf("the action ran %d times for %d identical Executes, want 1", runs, n)
	}
}
