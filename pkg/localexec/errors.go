package localexec

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// invalidArgument returns an INVALID_ARGUMENT status whose message starts
// with the offending field, e.g. "command.output_paths[1]: ...".
func invalidArgument(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// missingBlobs returns the REAPI FAILED_PRECONDITION error for blobs that
// are not in the CAS: one "MISSING" violation per digest, subject
// "blobs/{hash}/{size}", so clients know what to upload before retrying.
func missingBlobs(what string, ds []digest.Digest) error {
	sorted := digest.NewSet(ds...).Sorted()
	pf := &errdetails.PreconditionFailure{}
	for _, d := range sorted {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
			Type:        "MISSING",
			Subject:     "blobs/" + d.String(),
			Description: what + " not found in the CAS",
		})
	}
	st := status.Newf(codes.FailedPrecondition, "%d blob(s) missing from the CAS (%s), first %s", len(sorted), what, sorted[0])
	if withDetails, err := st.WithDetails(pf); err == nil {
		st = withDetails
	}
	return st.Err()
}

// internalf wraps an unexpected local failure (disk, process) as INTERNAL,
// keeping an existing status code when err already carries one.
func internalf(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if st, ok := status.FromError(err); ok && err != nil {
		return status.Errorf(st.Code(), "%s: %s", msg, st.Message())
	}
	return status.Errorf(codes.Internal, "%s: %v", msg, err)
}
