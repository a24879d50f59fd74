package grpcclient

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// wrap prefixes err with "upstream NAME: " and keeps its gRPC code. Context
// errors become CANCELED or DEADLINE_EXCEEDED. Already wrapped errors are
// returned as they are.
func wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	var w *wrapped
	if errors.As(err, &w) {
		return err
	}
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	return &wrapped{status.New(s.Code(), "upstream "+name+": "+s.Message())}
}

// wrapped is a status already labelled with the remote; it lets wrap be
// idempotent across layers.
type wrapped struct{ s *status.Status }

func (w *wrapped) Error() string { return w.s.Err().Error() }

// GRPCStatus lets status.FromError and status.Code see the code.
func (w *wrapped) GRPCStatus() *status.Status { return w.s }

// callerGone reports whether err is only the caller giving up, which says
// nothing about the remote's health. A fan-out cutting off a call that
// stalled (store.ErrStalled) is not the caller giving up: the remote did
// not answer in time.
func callerGone(ctx context.Context, err error) bool {
	if store.Stalled(ctx) {
		return false
	}
	return ctx.Err() != nil && (status.Code(err) == codes.Canceled || status.Code(err) == codes.DeadlineExceeded)
}
