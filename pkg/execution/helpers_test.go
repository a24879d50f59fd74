package execution_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// node is one in-process castd: a proxy server over a memory store with an
// execution server, listening on 127.0.0.1 (or a Unix socket).
type node struct {
	mem     *store.Memory
	runner  *countingRunner
	exec    *execution.Server
	srv     *grpc.Server
	addr    string
	client  repb.ExecutionClient
	ops     longrunningpb.OperationsClient
	bs      bspb.ByteStreamClient
	reg     *prometheus.Registry
	stopped atomic.Bool
	// received records the ExecuteRequests the node's service was sent.
	received *receivedRequests
}

// setup shapes a node: its scenario and remote (nil for a cluster), and
// plan tweaks.
type setup struct {
	scenario policy.Scenario
	remote   *node
	jobs     int
	unix     bool
	tweak    func(*execution.Plan)
	clock    clock.Clock // the execution server's clock; nil: the wall clock
	// outputPathsOnly makes the node a REAPI 2.1+ only execution service.
	outputPathsOnly bool
	// digestFunctions are the digest functions the node serves and
	// advertises; zero: all.
	digestFunctions digest.FunctionSet
}

func newNode(t testing.TB, s setup) *node {
	t.Helper()
	n := &node{mem: store.NewMemory(), reg: prometheus.NewRegistry()}
	lr, err := localexec.New(n.mem, localexec.Options{Jobs: s.jobs, WorkDir: t.TempDir(), WorkerName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	n.runner = &countingRunner{r: lr}
	plan := n.plan(t, s)
	n.exec, err = execution.New(execution.Config{
		Resolve:    func(context.Context, string) (*execution.Plan, error) { return plan, nil },
		Runner:     n.runner,
		Registerer: n.reg,
		Retention:  time.Minute,
		Logger:     slog.New(slog.DiscardHandler),
		Clock:      s.clock,

		OutputPathsOnly: s.outputPathsOnly,
		DigestFunctions: s.digestFunctions,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.serve(t, s)
	return n
}

// plan builds the node's Plan; with a remote, the AC reads through the
// real ordered fan-out as castd wires it.
func (n *node) plan(t testing.TB, s setup) *execution.Plan {
	p := &execution.Plan{Scenario: s.scenario, CAS: n.mem, LocalAC: n.mem,
		AC:          store.NewCompletenessCheckingActionCache(n.mem, n.mem),
		LocalLookup: store.NewCompletenessCheckingActionCache(n.mem, n.mem)}
	if s.remote != nil {
		r, err := grpcclient.Dial(context.Background(), grpcclient.Config{URL: "grpc://" + s.remote.addr, RetryLimit: 0})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		cas := fanout.NewCAS(n.mem, []fanout.Tier{{Name: "remote", CAS: r.CAS()}}, fanout.Options{})
		ac := fanout.NewActionCache(n.mem, []fanout.ACTier{{Name: "remote", AC: r.ActionCache()}}, cas, fanout.ACOptions{})
		p.AC = store.NewCompletenessCheckingActionCache(ac, cas)
		p.RemoteCAS = r.CAS()
		p.RemoteExec, p.RemoteOperations = r.Execution(), r.Execution().Operations()
		p.RemoteCapabilities = r.Capabilities
	}
	if s.tweak != nil {
		s.tweak(p)
	}
	return p
}

func (n *node) serve(t testing.TB, s setup) {
	n.received = &receivedRequests{Server: n.exec}
	o := testutil.REAPIOptions{
		CAS: n.mem, ActionCache: func(string) store.ActionCache { return n.mem },
		Server: grpcservers.Options{Execution: n.received, Logs: n.exec, Registerer: n.reg,
			OutputPathsOnly: s.outputPathsOnly, DigestFunctions: s.digestFunctions},
		Register: func(s *grpc.Server) { n.exec.RegisterOperations(s) },
	}
	if s.unix {
		o.Listen = testutil.ListenUnix
	}
	srv := testutil.StartREAPI(t, o)
	n.srv = srv.Server
	t.Cleanup(n.stop)
	n.addr = srv.Addr
	conn := srv.Dial(t)
	n.client, n.ops = repb.NewExecutionClient(conn), longrunningpb.NewOperationsClient(conn)
	n.bs = bspb.NewByteStreamClient(conn)
}

// stop stops the gRPC server, then the execution server, once.
func (n *node) stop() {
	if n.stopped.CompareAndSwap(false, true) {
		n.srv.Stop()
		n.exec.Close()
	}
}

// upload stores a shell action with an input file in the node's CAS and
// returns its digest.
func (n *node) upload(t testing.TB, script string, timeout time.Duration, mutate ...func(*repb.Action)) digest.Digest {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("input of "+script), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := localexec.UploadDir(ctx, n.mem, dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := &repb.Command{Arguments: []string{"/bin/sh", "-c", script}, OutputPaths: []string{"out.txt"}}
	a, ad, err := localexec.UploadAction(ctx, n.mem, cmd, root, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if len(mutate) == 0 {
		return ad
	}
	for _, m := range mutate {
		m(a)
	}
	ad, err = localexec.PutMessage(ctx, n.mem, a)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

// has reports whether the node's store holds every digest of ds.
func (n *node) has(t testing.TB, ds ...digest.Digest) bool {
	t.Helper()
	missing, err := n.mem.FindMissing(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	return len(missing) == 0
}

// execute runs Execute to the end and returns the final operation's
// response and name; a failed call is returned as the error.
func execute(t testing.TB, c repb.ExecutionClient, ad digest.Digest, skip bool) (*repb.ExecuteResponse, string, error) {
	t.Helper()
	stream, err := c.Execute(testutil.Context(t), &repb.ExecuteRequest{ActionDigest: ad.Proto(), SkipCacheLookup: skip})
	if err != nil {
		return nil, "", err
	}
	return finish(t, stream)
}

// finish reads an operation stream until done.
func finish(t testing.TB, stream grpc.ServerStreamingClient[longrunningpb.Operation]) (*repb.ExecuteResponse, string, error) {
	t.Helper()
	for {
		op, err := stream.Recv()
		if err == io.EOF {
			t.Fatal("stream ended before the operation was done")
		}
		if err != nil {
			return nil, "", err
		}
		if op.GetDone() {
			if e := op.GetError(); e != nil {
				return nil, op.GetName(), status.ErrorProto(e)
			}
			resp := &repb.ExecuteResponse{}
			if err := op.GetResponse().UnmarshalTo(resp); err != nil {
				t.Fatal(err)
			}
			return resp, op.GetName(), nil
		}
	}
}

// mustSucceed asserts an OK response with exit code 0.
func mustSucceed(t testing.TB, resp *repb.ExecuteResponse, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if c := resp.GetStatus().GetCode(); c != 0 || resp.GetResult().GetExitCode() != 0 {
		t.Fatalf("status %v (%s), exit %d; want OK, 0", codes.Code(c), resp.GetStatus().GetMessage(), resp.GetResult().GetExitCode())
	}
}

// wantCode asserts err has code want and its message contains substr.
func wantCode(t testing.TB, err error, want codes.Code, substr string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != want {
		t.Fatalf("got %v, want code %v", err, want)
	}
	if !strings.Contains(st.Message(), substr) {
		t.Fatalf("error %q does not mention %q", st.Message(), substr)
	}
}

// wantMessage checks how ExecuteResponse.message says the result was obtained.
func wantMessage(t testing.TB, resp *repb.ExecuteResponse, phrase string) {
	t.Helper()
	if m := resp.GetMessage(); m != phrase && !strings.HasPrefix(m, phrase+": ") {
		t.Errorf("message %q, want it to start with %q", m, phrase)
	}
}
