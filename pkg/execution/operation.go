package execution

import (
	"context"
	"sync"
	"time"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/castd/castd/pkg/digest"
)

// operation is one execution as clients see it: a name, a stage, and at the
// end an ExecuteResponse (or an operation error for a cancellation). Every
// Execute that joins it and every WaitExecution watches the same value.
// Safe for concurrent use.
type operation struct {
	name   string
	key    string        // singleflight key; "" when not shared
	action digest.Digest // with the request's digest function
	cancel context.CancelFunc

	mu         sync.Mutex
	stage      repb.ExecutionStage_Value
	done       bool
	cancelled  bool
	resp       *repb.ExecuteResponse
	opErr      *status.Status
	changed    chan struct{} // closed and replaced on every change
	finishedAt time.Time
	stdoutLog  string // log stream names while and after a local run
	stderrLog  string
}

func newOperation(name, key string, action digest.Digest) *operation {
	return &operation{name: name, key: key, action: action, stage: repb.ExecutionStage_QUEUED, changed: make(chan struct{}), cancel: func() {}}
}

// setStage moves the operation to stage and wakes the watchers.
func (o *operation) setStage(stage repb.ExecutionStage_Value) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done || o.stage == stage {
		return
	}
	o.stage = stage
	o.notify()
}

// setStreams publishes the names of the run's log streams.
func (o *operation) setStreams(stdout, stderr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stdoutLog, o.stderrLog = stdout, stderr
	o.notify()
}

// finish completes the operation with resp, or with opErr when the
// operation itself failed (it was cancelled).
func (o *operation) finish(resp *repb.ExecuteResponse, opErr *status.Status, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stage, o.done, o.resp, o.opErr, o.finishedAt = repb.ExecutionStage_COMPLETED, true, resp, opErr, now
	o.notify()
}

// requestCancel marks the operation cancelled and cancels its execution.
func (o *operation) requestCancel() {
	o.mu.Lock()
	o.cancelled = !o.done
	o.mu.Unlock()
	o.cancel()
}

// wasCancelled reports whether CancelOperation was called before the end.
func (o *operation) wasCancelled() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cancelled
}

func (o *operation) notify() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// snapshot returns the operation as a proto, a channel closed at the next
// change, and whether it is done.
func (o *operation) snapshot() (*longrunningpb.Operation, <-chan struct{}, bool) {
	o.mu.Lock()
	stage, done, resp, opErr, changed := o.stage, o.done, o.resp, o.opErr, o.changed
	md, _ := anypb.New(&repb.ExecuteOperationMetadata{Stage: stage, ActionDigest: o.action.Proto(),
		DigestFunction:   o.action.Func.Proto(),
		StdoutStreamName: o.stdoutLog, StderrStreamName: o.stderrLog})
	o.mu.Unlock()
	op := &longrunningpb.Operation{Name: o.name, Metadata: md, Done: done}
	switch {
	case opErr != nil:
		op.Result = &longrunningpb.Operation_Error{Error: opErr.Proto()}
	case resp != nil:
		a, _ := anypb.New(resp)
		op.Result = &longrunningpb.Operation_Response{Response: a}
	}
	return op, changed, done
}

// watch sends every state of o to send until o is done or ctx ends.
// Intermediate states may be skipped when they change faster than send.
func (o *operation) watch(ctx context.Context, send func(*longrunningpb.Operation) error) error {
	for {
		op, changed, done := o.snapshot()
		if err := send(op); err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}
