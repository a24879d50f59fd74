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
// REAPI server); nil otherwise. Malformed subjects are skipped. A subject
// that names no function is inferred from its hash length (see
// MissingBlobsInFunc when the request's function is known).
func MissingBlobsIn(err error) []digest.Digest { return missingBlobs(err, nil) }

// MissingBlobsInFunc is MissingBlobsIn for the answer to a request of
// digest function f: a subject that names no function ("blobs/{hash}/
// {size}", as servers write it for every function they can infer) is a
// digest of f when its hash has f's length, so the missing blobs of a
// BLAKE3 request are not taken for SHA-256 ones. A subject that names its
// function ("blobs/sha256/…") keeps it.
func MissingBlobsInFunc(err error, f digest.Function) []digest.Digest { return missingBlobs(err, &f) }

func missingBlobs(err error, f *digest.Function) []digest.Digest {
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
			subject := strings.TrimPrefix(v.GetSubject(), "/")
			r, err := digest.ParseReadResource(subject)
			if err != nil {
				continue
			}
			d := r.Digest
			if f != nil && d.Func != *f && len(d.Hash) == f.HashLength() && !strings.Contains(subject, "/"+d.Func.String()+"/"+d.Hash+"/") {
				d.Func = *f // inferred, not named: the request's function
			}
			out = append(out, d)
		}
	}
	return out
}
