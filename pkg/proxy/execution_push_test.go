package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// TestExecutionScenario3Push runs scenario 3 on the wiring castd uses: an
// execution.Server resolving plans with Set.ExecutionPlan, so the result
// reaches the remote cache only through the instance's queueing action
// cache (test/integration TestExecutionScenario3 does the same with castd
// processes).
func TestExecutionScenario3Push(t *testing.T) {
	cache := newUpstream(t)
	config := fmt.Sprintf(`
remote-execution:
  action-cache-service: {url: %[1]s, push: true}
  storage-service: {url: %[1]s}
`, cache.url)
	ws := newExecWorkstation(t, config)
	ad := ws.upload(t, "echo shared > out.txt; echo stdout")
	resp := ws.execute(t, ad)
	t.Run("miss runs locally and the remote holds the result", func(t *testing.T) {
		// Why: the queue pushes outputs and stdout to the storage service, then the entry to the remote AC.
		if ws.runs.Load() != 1 || resp.GetCachedResult() || resp.GetMessage() != execution.MessageLocalExecution {
			t.Fatalf("runs %d, response %v; want one local execution", ws.runs.Load(), resp)
		}
		testutil.Eventually(t, "the result in the remote action cache", func() bool {
			_, err := cache.mem.GetActionResult(context.Background(), ad)
			return err == nil
		})
		out, _ := digest.FromProto(resp.GetResult().GetOutputFiles()[0].GetDigest())
		stdout, _ := digest.FromProto(resp.GetResult().GetStdoutDigest())
		for name, d := range map[string]digest.Digest{"output": out, "stdout": stdout, "Action": ad} {
			if !cache.has(d) {
				t.Errorf("remote CAS lacks the %s %s", name, d)
			}
		}
	})
	t.Run("second workstation gets a remote hit", func(t *testing.T) {
		// Why: the point of pushing is that a fresh store is served from the remote.
		ws2 := newExecWorkstation(t, config)
		got := ws2.execute(t, ad)
		if !got.GetCachedResult() || ws2.runs.Load() != 0 || got.GetMessage() != execution.MessageRemoteCacheHit {
			t.Errorf("cached_result %v, runs %d, message %q; want a remote cache hit", got.GetCachedResult(), ws2.runs.Load(), got.GetMessage())
		}
	})
}

// execWorkstation is castd's execution wiring in process: a Set over a
// disk store, a local runner and an execution.Server resolving plans with
// Set.ExecutionPlan, served on a loopback port.
type execWorkstation struct {
	cas    store.CAS
	runs   atomic.Int32
	client repb.ExecutionClient
}

func newExecWorkstation(t *testing.T, config string) *execWorkstation {
	t.Helper()
	set, local := newSet(t, t.TempDir(), config)
	lr, err := localexec.New(local, localexec.Options{Jobs: 1, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ws := &execWorkstation{}
	if ws.cas, err = set.CAS(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	exec, err := execution.New(execution.Config{
		Resolve: set.ExecutionPlan, Runner: runnerFunc(func(ctx context.Context, a *repb.Action) (*repb.ActionResult, error) {
			ws.runs.Add(1)
			return lr.Run(ctx, a)
		}),
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(exec.Close)
	srv := grpcservers.NewServer(set, grpcservers.Options{Execution: exec, Registerer: prometheus.NewRegistry()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ws.client = repb.NewExecutionClient(conn)
	return ws
}

// upload writes a shell action with an empty input root through the
// instance's CAS, as a client's uploads arrive, and returns its digest.
func (ws *execWorkstation) upload(t *testing.T, script string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	root, err := localexec.PutMessage(ctx, ws.cas, &repb.Directory{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := &repb.Command{Arguments: []string{"/bin/sh", "-c", script}, OutputPaths: []string{"out.txt"}}
	_, ad, err := localexec.UploadAction(ctx, ws.cas, cmd, root, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

// execute runs Execute to the end and returns the response of a
// successful operation.
func (ws *execWorkstation) execute(t *testing.T, ad digest.Digest) *repb.ExecuteResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := ws.client.Execute(ctx, &repb.ExecuteRequest{ActionDigest: ad.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	for {
		op, err := stream.Recv()
		if err != nil {
			t.Fatalf("operation stream ended before done: %v", err)
		}
		if !op.GetDone() {
			continue
		}
		resp := &repb.ExecuteResponse{}
		if err := op.GetResponse().UnmarshalTo(resp); err != nil {
			t.Fatalf("operation %s: %v (error %v)", op.GetName(), err, op.GetError())
		}
		if resp.GetStatus().GetCode() != 0 || resp.GetResult().GetExitCode() != 0 {
			t.Fatalf("Execute: status %v, exit %d", resp.GetStatus(), resp.GetResult().GetExitCode())
		}
		return resp
	}
}

// runnerFunc adapts a function to execution.Runner.
type runnerFunc func(ctx context.Context, a *repb.Action) (*repb.ActionResult, error)

func (f runnerFunc) Run(ctx context.Context, a *repb.Action) (*repb.ActionResult, error) {
	return f(ctx, a)
}
