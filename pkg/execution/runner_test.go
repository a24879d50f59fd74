package execution_test

import (
	"context"
	"sync/atomic"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/status"

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
