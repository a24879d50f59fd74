package execution

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// invalidArgument returns INVALID_ARGUMENT whose message starts with field.
func invalidArgument(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// missingBlobs is the REAPI FAILED_PRECONDITION for blobs absent from a
// CAS: one MISSING violation per digest, subject "blobs/{hash}/{size}".
func missingBlobs(where string, ds []digest.Digest) error {
	sorted := digest.NewSet(ds...).Sorted()
	pf := &errdetails.PreconditionFailure{}
	for _, d := range sorted {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
			Type: "MISSING", Subject: "blobs/" + d.String(), Description: "not found in " + where,
		})
	}
	st := status.Newf(codes.FailedPrecondition, "%d blob(s) missing from %s, first %s", len(sorted), where, sorted[0])
	if withDetails, err := st.WithDetails(pf); err == nil {
		st = withDetails
	}
	return st.Err()
}

// missingIn returns the digests of the MISSING violations in st, if st is a
// FAILED_PRECONDITION carrying them.
func missingIn(st *status.Status) []digest.Digest {
	if st.Code() != codes.FailedPrecondition {
		return nil
	}
	var ds []digest.Digest
	for _, det := range st.Details() {
		pf, ok := det.(*errdetails.PreconditionFailure)
		if !ok {
			continue
		}
		for _, v := range pf.GetViolations() {
			if d, ok := parseBlobSubject(v); ok {
				ds = append(ds, d)
			}
		}
	}
	return ds
}

// parseBlobSubject reads "blobs/{hash}/{size}" from a MISSING violation.
func parseBlobSubject(v *errdetails.PreconditionFailure_Violation) (digest.Digest, bool) {
	if v.GetType() != "MISSING" {
		return digest.Digest{}, false
	}
	hash, size, ok := strings.Cut(strings.TrimPrefix(v.GetSubject(), "blobs/"), "/")
	if !ok {
		return digest.Digest{}, false
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil {
		return digest.Digest{}, false
	}
	d, err := digest.New(hash, n)
	return d, err == nil
}

// unsupportedPlatform is the early FAILED_PRECONDITION for a platform
// property the execution service is known not to satisfy.
func unsupportedPlatform(property string) error {
	st := status.Newf(codes.FailedPrecondition, "platform property %s is not supported by the execution service", property)
	pf := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: "UNSUPPORTED_PLATFORM", Subject: property, Description: "the execution service cannot satisfy this platform property",
	}}}
	if withDetails, err := st.WithDetails(pf); err == nil {
		st = withDetails
	}
	return st.Err()
}
