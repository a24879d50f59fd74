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

// parseDigest validates a digest field.
func parseDigest(field string, pd *repb.Digest) (digest.Digest, error) {
	d, err := digest.FromProto(pd)
	if err != nil {
		return digest.Digest{}, grpcerr.InvalidArgument(field, "%s", status.Convert(err).Message())
	}
	return d, nil
}

// parseDigests validates a repeated digest field.
func parseDigests(field string, pds []*repb.Digest) ([]digest.Digest, error) {
	out := make([]digest.Digest, 0, len(pds))
	for i, pd := range pds {
		d, err := parseDigest(fmt.Sprintf("%s[%d]", field, i), pd)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// parseDigestFunction accepts only SHA-256 (or unset, which means it).
func parseDigestFunction(fn repb.DigestFunction_Value) error {
	if fn != repb.DigestFunction_UNKNOWN && fn != repb.DigestFunction_SHA256 {
		return grpcerr.InvalidArgument("digest_function", "%s is not supported; castd stores SHA256 only", fn)
	}
	return nil
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
