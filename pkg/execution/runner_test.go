package execution_test

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/localexec"
)

// countingRunner is a localexec.Runner that counts runs and, when gate is
// set, holds every run until gate is closed. When refuse is set (before
// the node serves anything), a run it returns an error for fails with it.
type countingRunner struct {
	r      *localexec.Runner
	runs   atomic.Int64
	gate   chan struct{}
	refuse func(*repb.Action) error
}

// RunIn makes countingRunner an execution.FunctionRunner.
func (c *countingRunner) RunIn(ctx context.Context, fn digest.Function, a *repb.Action, stdout, stderr io.Writer) (*repb.ActionResult, error) {
	if err := c.hold(ctx, a); err != nil {
		return nil, err
	}
	return c.r.RunIn(ctx, fn, a, stdout, stderr)
}

var _ execution.FunctionRunner = (*countingRunner)(nil)

func (c *countingRunner) Run(ctx context.Context, a *repb.Action) (*repb.ActionResult, error) {
	if err := c.hold(ctx, a); err != nil {
		return nil, err
	}
	return c.r.Run(ctx, a)
}

// hold counts a run, waits for the gate, if any, and applies refuse.
func (c *countingRunner) hold(ctx context.Context, a *repb.Action) error {
	c.runs.Add(1)
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if c.refuse != nil {
		return c.refuse(a)
	}
	return nil
}

// receivedRequests is a node's Execution service recording every
// ExecuteRequest it is sent.
type receivedRequests struct {
	*execution.Server
	mu   sync.Mutex
	reqs []*repb.ExecuteRequest
}

func (r *receivedRequests) Execute(req *repb.ExecuteRequest, stream grpc.ServerStreamingServer[longrunningpb.Operation]) error {
	r.mu.Lock()
	r.reqs = append(r.reqs, proto.CloneOf(req))
	r.mu.Unlock()
	return r.Server.Execute(req, stream)
}

// all returns the requests received so far.
func (r *receivedRequests) all() []*repb.ExecuteRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*repb.ExecuteRequest(nil), r.reqs...)
}
