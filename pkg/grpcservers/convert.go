package grpcservers

import (
	"fmt"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// Service labels of the castd_bytes_* counters.
const (
	serviceCAS        = "cas"
	serviceByteStream = "bytestream"
)

// digestsFromProto validates every digest of a request field as a digest
// under fn, the request's function; the error names the first bad one,
// e.g. "blob_digests[3]: ...".
func digestsFromProto(fn digest.Function, field string, ps []*repb.Digest) ([]digest.Digest, error) {
	ds := make([]digest.Digest, len(ps))
	for i, p := range ps {
		d, err := digest.FromProtoIn(fn, p)
		if err != nil {
			return nil, fieldError(fmt.Sprintf("%s[%d]", field, i), err)
		}
		ds[i] = d
	}
	return ds, nil
}

// firstHash is the hash of ps's first digest, "" when there is none: the
// sample requestFunction infers an unnamed function from.
func firstHash(ps []*repb.Digest) string {
	if len(ps) == 0 {
		return ""
	}
	return ps[0].GetHash()
}

// digestsToProto converts ds in one allocation for the messages.
func digestsToProto(ds []digest.Digest) []*repb.Digest {
	backing := make([]repb.Digest, len(ds))
	ps := make([]*repb.Digest, len(ds))
	for i, d := range ds {
		backing[i].Hash, backing[i].SizeBytes = d.Hash, d.Size
		ps[i] = &backing[i]
	}
	return ps
}

// fieldError prefixes a validation error with the request field it is about,
// keeping its code.
func fieldError(field string, err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	return status.Error(st.Code(), field+": "+st.Message())
}

// prefixError is fieldError for errors from storage: the prefix says which
// entry of a batch failed.
func prefixError(prefix string, err error) error { return fieldError(prefix, err) }
