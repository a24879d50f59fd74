package execution_test

import (
	"context"
	"sync"
	"testing"
	"time"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/testutil"
	"google.golang.org/grpc/codes"
)

func TestConcurrentIdenticalExecutesRunOnce(t *testing.T) {
	// Why: identical concurrent Executes must share one execution and all get its result.
	n := newNode(t, setup{})
	n.runner.gate = make(chan struct{})
	ad := n.upload(t, "echo once > out.txt", 0)
	const callers = 5
	names := make(chan string, callers)
	results := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			stream, err := n.client.Execute(testutil.Context(t), &repb.ExecuteRequest{ActionDigest: ad.Proto()})
			if err == nil {
				var first *longrunningpb.Operation
				if first, err = stream.Recv(); err == nil {
					names <- first.GetName()
					var resp *repb.ExecuteResponse
					resp, _, err = finish(t, stream)
					if err == nil && resp.GetResult().GetExitCode() != 0 {
						err = context.Canceled
					}
				}
			}
			results <- err
		})
	}
	seen := map[string]bool{}
	for range callers {
		seen[<-names] = true // every caller has joined once it saw the operation
	}
	close(n.runner.gate)
	wg.Wait()
	for range callers {
		if err := <-results; err != nil {
			t.Errorf("caller: %v", err)
		}
	}
	if len(seen) != 1 || n.runner.runs.Load() != 1 {
		t.Errorf("operation names %v, runs %d; want one name, one run", seen, n.runner.runs.Load())
	}
}

func TestOperations(t *testing.T) {
	t.Run("wait execution after the client's stream was cancelled", func(t *testing.T) {
		// Why: the execution outlives its caller and WaitExecution resumes it.
		n := newNode(t, setup{})
		n.runner.gate = make(chan struct{})
		name := startAndDrop(t, n, n.upload(t, "echo resumed > out.txt", 0))
		close(n.runner.gate)
		stream, err := n.client.WaitExecution(testutil.Context(t), &repb.WaitExecutionRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		resp, got, err := finish(t, stream)
		mustSucceed(t, resp, err)
		if got != name {
			t.Errorf("WaitExecution streamed %q, want %q", got, name)
		}
	})
	t.Run("get operation while running and after", func(t *testing.T) {
		// Why: GetOperation reports the stage of a running operation and the result of a finished one.
		n := newNode(t, setup{})
		n.runner.gate = make(chan struct{})
		name := startAndDrop(t, n, n.upload(t, "echo polled > out.txt", 0))
		testutil.Eventually(t, "stage EXECUTING", func() bool { return stage(t, n, name) == repb.ExecutionStage_EXECUTING })
		close(n.runner.gate)
		testutil.Eventually(t, "operation done", func() bool { return stage(t, n, name) == repb.ExecutionStage_COMPLETED })
		op, err := n.ops.GetOperation(testutil.Context(t), &longrunningpb.GetOperationRequest{Name: name})
		if err != nil || !op.GetDone() || op.GetResponse() == nil {
			t.Errorf("finished operation: %v, %v; want done with a response", op, err)
		}
	})
	t.Run("cancel operation kills a long local run", func(t *testing.T) {
		// Why: CancelOperation must stop the process, not wait for it.
		n := newNode(t, setup{})
		stream, err := n.client.Execute(testutil.Context(t), &repb.ExecuteRequest{ActionDigest: n.upload(t, "sleep 120", 0).Proto()})
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the command to start", func() bool { return n.runner.r.Running() == 1 })
		start := time.Now()
		if _, err := n.ops.CancelOperation(testutil.Context(t), &longrunningpb.CancelOperationRequest{Name: first.GetName()}); err != nil {
			t.Fatal(err)
		}
		_, _, err = finish(t, stream)
		wantCode(t, err, codes.Canceled, "cancel")
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("cancellation took %v", took)
		}
		testutil.Eventually(t, "the runner to release its slot", func() bool { return n.runner.r.Running() == 0 })
	})
	t.Run("unknown operation", func(t *testing.T) {
		// Why: WaitExecution and GetOperation on a name never issued are NOT_FOUND.
		n := newNode(t, setup{})
		stream, err := n.client.WaitExecution(testutil.Context(t), &repb.WaitExecutionRequest{Name: "operations/nope"})
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, err, codes.NotFound, "nope")
		_, err = n.ops.GetOperation(testutil.Context(t), &longrunningpb.GetOperationRequest{Name: "operations/nope"})
		wantCode(t, err, codes.NotFound, "nope")
	})
}

// startAndDrop starts an Execute, reads the first operation and cancels the
// stream, returning the operation's name.
func startAndDrop(t *testing.T, n *node, ad interface{ Proto() *repb.Digest }) string {
	t.Helper()
	ctx, cancel := context.WithCancel(testutil.Context(t))
	defer cancel()
	stream, err := n.client.Execute(ctx, &repb.ExecuteRequest{ActionDigest: ad.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetDone() {
		t.Fatal("operation finished before the gate opened")
	}
	return first.GetName()
}

// stage returns the stage GetOperation reports for name.
func stage(t *testing.T, n *node, name string) repb.ExecutionStage_Value {
	t.Helper()
	op, err := n.ops.GetOperation(testutil.Context(t), &longrunningpb.GetOperationRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	md := &repb.ExecuteOperationMetadata{}
	if err := op.GetMetadata().UnmarshalTo(md); err != nil {
		t.Fatal(err)
	}
	return md.GetStage()
}
