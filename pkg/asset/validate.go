package asset

import (
	"fmt"
	"net/url"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
)

// parseAsset validates the URIs and qualifiers of a request: at least one
// URI, each non-empty with a scheme; qualifier names non-empty and unique.
// The slices are copied, so the request can be let go.
func parseAsset(kind Kind, uris []string, qs []*assetpb.Qualifier) (Asset, error) {
	if len(uris) == 0 {
		return Asset{}, grpcerr.InvalidArgument("uris", "at least one URI is required")
	}
	for i, u := range uris {
		if u == "" {
			return Asset{}, grpcerr.InvalidArgument(fmt.Sprintf("uris[%d]", i), "empty URI")
		}
		if p, err := url.Parse(u); err != nil || p.Scheme == "" {
			return Asset{}, grpcerr.InvalidArgument(fmt.Sprintf("uris[%d]", i), "%q is not a URI with a scheme", u)
		}
	}
	first := map[string]int{}
	for i, q := range qs {
		if q.GetName() == "" {
			return Asset{}, grpcerr.InvalidArgument(fmt.Sprintf("qualifiers[%d].name", i), "empty qualifier name")
		}
		if j, dup := first[q.GetName()]; dup {
			return Asset{}, grpcerr.InvalidArgument(fmt.Sprintf("qualifiers[%d].name", i), "duplicate qualifier %q (also qualifiers[%d])", q.GetName(), j)
		}
		first[q.GetName()] = i
	}
	a := Asset{Kind: kind, URIs: append([]string(nil), uris...)}
	for _, q := range qs {
		a.Qualifiers = append(a.Qualifiers, &assetpb.Qualifier{Name: q.GetName(), Value: q.GetValue()})
	}
	return a, nil
}

// parseDigest validates a digest field as a digest of fn, the request's
// function.
func parseDigest(fn digest.Function, field string, pd *repb.Digest) (digest.Digest, error) {
	d, err := digest.FromProtoIn(fn, pd)
	if err != nil {
		return digest.Digest{}, grpcerr.InvalidArgument(field, "%s", status.Convert(err).Message())
	}
	return d, nil
}

// parseDigests validates a repeated digest field in fn.
func parseDigests(fn digest.Function, field string, pds []*repb.Digest) ([]digest.Digest, error) {
	out := make([]digest.Digest, 0, len(pds))
	for i, pd := range pds {
		d, err := parseDigest(fn, fmt.Sprintf("%s[%d]", field, i), pd)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// parseDigestFunction returns the function a request's digest_function
// field names, which must be in allowed (zero: every function castd
// verifies). Unset is SHA-256 for a Fetch (sample ""), as the Remote Asset
// API says; a Push may leave it unset for an inferable function, which is
// then inferred from the length of sample, the hash pushed. Anything else
// is INVALID_ARGUMENT naming digest_function.
func parseDigestFunction(field repb.DigestFunction_Value, sample string, allowed digest.FunctionSet) (digest.Function, error) {
	if allowed == 0 {
		allowed = digest.AllFunctions
	}
	return digest.Resolve(field, sample, allowed)
}

// parseTime validates an optional timestamp field; nil is the zero time.
func parseTime(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, grpcerr.InvalidArgument(field, "%v", err)
	}
	return ts.AsTime(), nil
}
