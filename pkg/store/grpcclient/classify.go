package grpcclient

import "google.golang.org/grpc/codes"

// Permanent reports whether a remote's answer with code is a refusal that
// repeating the same call will not change: UNIMPLEMENTED,
// PERMISSION_DENIED, UNAUTHENTICATED (the client has already re-read its
// token once before returning it), INVALID_ARGUMENT and
// FAILED_PRECONDITION. A write that is refused permanently should be parked,
// not retried; a read should move on to the next remote.
//
// The transient codes (worth another attempt later) are UNAVAILABLE,
// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL and UNKNOWN; see
// transient. Every other code (OK, NOT_FOUND, CANCELED, DATA_LOSS, ...) is
// neither: it is an answer about the data or the caller, not the remote.
// This is the one classification used by the retry loop, the per-role
// health and the write-back queue.
func Permanent(code codes.Code) bool {
	switch code {
	case codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated,
		codes.InvalidArgument, codes.FailedPrecondition:
		return true
	}
	return false
}

// transient reports whether code says the remote could not answer now but
// may later: the complement of Permanent among the failure codes.
func transient(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Aborted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}
