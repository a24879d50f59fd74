package grpcclient

import (
	"context"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/store"
)

// wrap labels err with "upstream NAME" (grpcerr.Label) and keeps its gRPC
// code. Context errors become CANCELED or DEADLINE_EXCEEDED. Already
// labelled errors are returned as they are.
func wrap(name string, err error) error { return grpcerr.Label(label(name), err) }

// label is the label of the remote's errors: "upstream NAME".
func label(name string) string { return "upstream " + name }

// cancelledByCaller reports whether err is only the caller giving up,
// which says nothing about the remote's health. A fan-out cutting off a
// call that stalled (store.ErrStalled) is not the caller giving up: the
// remote did not answer in time.
func cancelledByCaller(ctx context.Context, err error) bool {
	if store.Stalled(ctx) {
		return false
	}
	return ctx.Err() != nil && grpcerr.Canceled(err)
}
