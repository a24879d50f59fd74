package store

import (
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// MissingBlobsError is REAPI's FAILED_PRECONDITION for blobs absent from a
// CAS: one PreconditionFailure violation of type "MISSING" per digest,
// subject "blobs/{hash}/{size}", so a client knows what to upload before
// retrying. where names the CAS ("the CAS", "the execution service's
// CAS"). ds must not be empty.
func MissingBlobsError(where string, ds []digest.Digest) error {
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

// MissingBlobsIn returns the digests named by the MISSING violations of
// err, when it is a FAILED_PRECONDITION carrying them (from castd or any
// REAPI server); nil otherwise. Malformed subjects are skipped.
func MissingBlobsIn(err error) []digest.Digest {
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		return nil
	}
	var out []digest.Digest
	for _, det := range st.Details() {
		pf, ok := det.(*errdetails.PreconditionFailure)
		if !ok {
			continue
		}
		for _, v := range pf.GetViolations() {
			if v.GetType() != "MISSING" {
				continue
			}
			if r, err := digest.ParseReadResource(strings.TrimPrefix(v.GetSubject(), "/")); err == nil {
				out = append(out, r.Digest)
			}
		}
	}
	return out
}
