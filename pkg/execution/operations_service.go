package execution

import (
	"context"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// GetOperation implements longrunningpb.OperationsServer: the current state
// of a running or recently finished operation, NOT_FOUND otherwise.
func (s *Server) GetOperation(_ context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	o, err := s.lookupOperation(req.GetName())
	if err != nil {
		return nil, err
	}
	op, _, _ := o.snapshot()
	return op, nil
}

// CancelOperation implements longrunningpb.OperationsServer. It stops the
// execution behind the operation (for every caller sharing it): a local
// run's process group is killed, a remote run is cancelled. The operation
// then finishes with Operation.error CANCELLED. Cancelling a finished
// operation does nothing.
func (s *Server) CancelOperation(_ context.Context, req *longrunningpb.CancelOperationRequest) (*emptypb.Empty, error) {
	o, err := s.lookupOperation(req.GetName())
	if err != nil {
		return nil, err
	}
	o.requestCancel()
	return &emptypb.Empty{}, nil
}
