package store

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// UnsupportedFunctionError is what a store that does not take a digest
// function (a remote whose Capabilities do not list it) returns from a
// write or an action-cache update of a digest of that function. It is not
// a failure of the store: callers skip that store for that digest (the
// write-back queue drops the push, the fan-out moves to the next tier),
// and it never opens a breaker. Reads of such a digest are plain
// NOT_FOUND, and FindMissing reports them missing, without asking.
type UnsupportedFunctionError struct {
	Func  digest.Function
	Store string // the remote's name, for logs
}

func (e *UnsupportedFunctionError) Error() string {
	return fmt.Sprintf("%s does not take %s digests (not in its Capabilities' digest_functions)", e.Store, e.Func)
}

// GRPCStatus makes the error a FAILED_PRECONDITION status.
func (e *UnsupportedFunctionError) GRPCStatus() *status.Status {
	return status.New(codes.FailedPrecondition, e.Error())
}

// IsUnsupportedFunction reports whether err is, or wraps, an
// UnsupportedFunctionError.
func IsUnsupportedFunction(err error) bool {
	var u *UnsupportedFunctionError
	return errors.As(err, &u)
}
