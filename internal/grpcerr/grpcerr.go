// Package grpcerr holds the gRPC status helpers every layer of castd
// shares: field errors for bad requests, the caller's cancellation as a
// status, and labelled errors that name the layer or remote they come
// from while keeping the label apart from the message, so that an outer
// layer can relabel an error without parsing its text.
//
// gRPC status is castd's one error vocabulary (DESIGN §5): these helpers
// keep the code of what they wrap. The package must not know any layer's
// label format; layers choose their labels.
package grpcerr

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InvalidArgument returns INVALID_ARGUMENT whose message starts with the
// offending request field, e.g. "command.output_paths[1]: ...".
func InvalidArgument(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// CallerGone returns the caller's cancellation as a status (CANCELED or
// DEADLINE_EXCEEDED), or nil while ctx is live. Check it before turning
// failures into NOT_FOUND, so that a client giving up is never reported as
// a miss.
func CallerGone(ctx context.Context) error {
	return status.FromContextError(ctx.Err()).Err()
}

// Canceled reports whether err has the code of a call cut off by its
// context: CANCELED or DEADLINE_EXCEEDED.
func Canceled(err error) bool {
	c := status.Code(err)
	return c == codes.Canceled || c == codes.DeadlineExceeded
}

// Of is status.Convert that also understands bare context errors: they
// become CANCELED or DEADLINE_EXCEEDED rather than UNKNOWN.
func Of(err error) *status.Status {
	if s, ok := status.FromError(err); ok {
		return s
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return status.FromContextError(err)
	}
	return status.Convert(err)
}

// Labeled is a status error labelled with the layer or remote it comes
// from. Its status (code kept) reads "Label: cause's message"; an outer
// layer that puts its own label on the error can drop this one with
// Unlabeled instead of trimming text.
type Labeled struct {
	Label string
	Cause *status.Status // the status before labelling
}

// Label returns err as a Labeled error with label, keeping its gRPC code
// (a bare context error becomes CANCELED or DEADLINE_EXCEEDED). An error
// that is already labelled is returned as it is, so that labelling is
// idempotent across the layers of one component. Nil stays nil.
func Label(label string, err error) error {
	if err == nil {
		return nil
	}
	var l *Labeled
	if errors.As(err, &l) {
		return err
	}
	return &Labeled{Label: label, Cause: Of(err)}
}

// Labelf is Label of a new status with code and the formatted message.
func Labelf(label string, code codes.Code, format string, args ...any) error {
	return &Labeled{Label: label, Cause: status.Newf(code, format, args...)}
}

// Error renders the labelled status like status.Error does.
func (e *Labeled) Error() string { return e.GRPCStatus().Err().Error() }

// GRPCStatus lets status.FromError and status.Code see the code and the
// labelled message.
func (e *Labeled) GRPCStatus() *status.Status {
	return status.New(e.Cause.Code(), e.Label+": "+e.Cause.Message())
}

// Unlabeled returns err's status without the label of a Labeled error it
// is or wraps (the status as it was before Label), or Of(err) when it
// carries none.
func Unlabeled(err error) *status.Status {
	var l *Labeled
	if errors.As(err, &l) {
		return l.Cause
	}
	return Of(err)
}
