package grpcclient_test

import (
	"context"
	"strings"
	"testing"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// refusingExecution records the instance name of each Execute and answers
// FAILED_PRECONDITION with one MISSING violation.
type refusingExecution struct {
	repb.UnimplementedExecutionServer
	instances chan string
}

func (e *refusingExecution) Execute(req *repb.ExecuteRequest, _ grpc.ServerStreamingServer[longrunningpb.Operation]) error {
	e.instances <- req.GetInstanceName()
	st, _ := status.New(codes.FailedPrecondition, "missing inputs").WithDetails(&errdetails.PreconditionFailure{
		Violations: []*errdetails.PreconditionFailure_Violation{{Type: "MISSING", Subject: "blobs/abc/1"}}})
	return st.Err()
}

func TestExecutionClient(t *testing.T) {
	// Why: Execute must go out under the remote's instance name, and the
	// MISSING details the caller acts on must survive error labelling.
	fake := &refusingExecution{instances: make(chan string, 1)}
	addr := testutil.ServeGRPC(t, func(s *grpc.Server) { repb.RegisterExecutionServer(s, fake) })
	r, err := grpcclient.Dial(context.Background(), grpcclient.Config{URL: "grpc://" + addr, InstanceName: "cluster", Name: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	stream, err := r.Execution().Execute(context.Background(), &repb.ExecuteRequest{InstanceName: "client"})
	if err == nil {
		_, err = stream.Recv()
	}
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || !strings.HasPrefix(st.Message(), "upstream exec: ") || len(st.Details()) != 1 {
		t.Errorf("error %v with details %v; want labelled FAILED_PRECONDITION keeping its violation", err, st.Details())
	}
	if got := <-fake.instances; got != "cluster" {
		t.Errorf("instance name sent = %q, want cluster", got)
	}
}
