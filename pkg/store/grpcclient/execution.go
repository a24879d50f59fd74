package grpcclient

import (
	"context"
	"io"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ExecutionClient calls one remote's Execution and Operations services over
// the remote's connection, so its credentials and TLS apply. Every Execute
// is sent under the remote's configured instance name, whatever the request
// carries. Errors keep their code and details (a PreconditionFailure listing
// missing blobs survives) and are prefixed with the remote's name. Streams
// are cut by the remote's idle timeout like every other stream; callers
// resume them with WaitExecution. Safe for concurrent use.
type ExecutionClient struct {
	r    *Remote
	exec repb.ExecutionClient
	ops  longrunningpb.OperationsClient
}

var _ repb.ExecutionClient = (*ExecutionClient)(nil)

// Execution returns a client for the remote's Execution and Operations
// services. It is cheap; no connection is made until the first call.
func (r *Remote) Execution() *ExecutionClient {
	return &ExecutionClient{r: r, exec: repb.NewExecutionClient(r.conn), ops: longrunningpb.NewOperationsClient(r.conn)}
}

// InstanceName returns the instance name every Execute is sent under.
func (c *ExecutionClient) InstanceName() string { return c.r.instance }

// Execute starts req on the remote (under the remote's instance name; req is
// not modified) and returns the stream of its operations.
func (c *ExecutionClient) Execute(ctx context.Context, req *repb.ExecuteRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[longrunningpb.Operation], error) {
	req = proto.CloneOf(req)
	req.InstanceName = c.r.instance
	s, err := c.exec.Execute(ctx, req, opts...)
	if err != nil {
		return nil, keepDetails(c.r.name, err)
	}
	return &opStream{ServerStreamingClient: s, name: c.r.name}, nil
}

// WaitExecution resumes watching the remote operation req.Name.
func (c *ExecutionClient) WaitExecution(ctx context.Context, req *repb.WaitExecutionRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[longrunningpb.Operation], error) {
	s, err := c.exec.WaitExecution(ctx, req, opts...)
	if err != nil {
		return nil, keepDetails(c.r.name, err)
	}
	return &opStream{ServerStreamingClient: s, name: c.r.name}, nil
}

// CancelOperation asks the remote to cancel the operation called name. It
// is best effort: a remote that does not implement it answers UNIMPLEMENTED.
func (c *ExecutionClient) CancelOperation(ctx context.Context, name string) error {
	_, err := c.ops.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name})
	return keepDetails(c.r.name, err)
}

// Operations returns the remote's Operations client (GetOperation,
// CancelOperation) with no name-prefixing of errors.
func (c *ExecutionClient) Operations() longrunningpb.OperationsClient { return c.ops }

// opStream labels the errors of a remote operation stream with the remote.
type opStream struct {
	grpc.ServerStreamingClient[longrunningpb.Operation]
	name string
}

func (s *opStream) Recv() (*longrunningpb.Operation, error) {
	op, err := s.ServerStreamingClient.Recv()
	if err != nil && err != io.EOF {
		return nil, keepDetails(s.name, err)
	}
	return op, err
}

// keepDetails prefixes err with "upstream NAME: " like wrap does, but keeps
// the status details, which Execute callers act on (MISSING violations).
func keepDetails(name string, err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	p := proto.CloneOf(s.Proto())
	p.Message = "upstream " + name + ": " + p.GetMessage()
	return status.FromProto(p).Err()
}
