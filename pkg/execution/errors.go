package execution

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unsupportedPlatform is the early FAILED_PRECONDITION for a platform
// property the execution service is known not to satisfy.
func unsupportedPlatform(property string) error {
	return platformFailure(property, "the execution service cannot satisfy this platform property",
		"platform property %s is not supported by the execution service", property)
}

// platformFailure is FAILED_PRECONDITION with one UNSUPPORTED_PLATFORM
// violation whose subject is the property (or "name=value, ..." platform),
// so that a castd in front of this one can learn from it too.
func platformFailure(subject, description, format string, args ...any) error {
	st := status.Newf(codes.FailedPrecondition, format, args...)
	pf := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: "UNSUPPORTED_PLATFORM", Subject: subject, Description: description,
	}}}
	if withDetails, err := st.WithDetails(pf); err == nil {
		st = withDetails
	}
	return st.Err()
}
