package asset

import (
	"context"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

type pushServer struct {
	assetpb.UnimplementedPushServer
	resolve Resolver
	opts    Options
}

// pushRequest is what PushBlobRequest and PushDirectoryRequest share.
type pushRequest interface {
	GetInstanceName() string
	GetUris() []string
	GetQualifiers() []*assetpb.Qualifier
	GetExpireAt() *timestamppb.Timestamp
	GetReferencesBlobs() []*repb.Digest
	GetReferencesDirectories() []*repb.Digest
	GetDigestFunction() repb.DigestFunction_Value
}

// PushBlob implements assetpb.PushServer.
func (s *pushServer) PushBlob(ctx context.Context, req *assetpb.PushBlobRequest) (*assetpb.PushBlobResponse, error) {
	return &assetpb.PushBlobResponse{}, s.push(ctx, Blob, "blob_digest", req.GetBlobDigest(), req)
}

// PushDirectory implements assetpb.PushServer.
func (s *pushServer) PushDirectory(ctx context.Context, req *assetpb.PushDirectoryRequest) (*assetpb.PushDirectoryResponse, error) {
	return &assetpb.PushDirectoryResponse{}, s.push(ctx, Directory, "root_directory_digest", req.GetRootDirectoryDigest(), req)
}

// push validates req, requires the content (the whole tree for a
// directory) and the referenced blobs and directory roots to be in the CAS,
// and records the association in the request's digest function, which
// every digest of the request is parsed in.
func (s *pushServer) push(ctx context.Context, kind Kind, field string, root *repb.Digest, req pushRequest) error {
	fn, err := parseDigestFunction(req.GetDigestFunction(), root.GetHash(), s.opts.DigestFunctions)
	if err != nil {
		return err
	}
	a, err := parseAsset(kind, req.GetUris(), req.GetQualifiers())
	if err != nil {
		return err
	}
	a.Func = fn
	d, err := parseDigest(fn, field, root)
	if err != nil {
		return err
	}
	expire, err := parseTime("expire_at", req.GetExpireAt())
	if err != nil {
		return err
	}
	refs, err := parseDigests(fn, "references_blobs", req.GetReferencesBlobs())
	if err != nil {
		return err
	}
	dirs, err := parseDigests(fn, "references_directories", req.GetReferencesDirectories())
	if err != nil {
		return err
	}
	idx, cas, err := s.resolve(ctx, req.GetInstanceName())
	if err != nil {
		return err
	}
	if err := requirePresent(ctx, cas, kind, d, append(refs, dirs...)); err != nil {
		return err
	}
	return idx.Record(ctx, a, Ref{Digest: d, ExpireAt: expire})
}

// requirePresent is FAILED_PRECONDITION with a MISSING violation per absent
// digest (the REAPI convention clients know) unless the content under root
// and every digest of extra is in cas. Referenced directories are hints, so
// only their root Directory is required, not their trees.
func requirePresent(ctx context.Context, cas store.CAS, kind Kind, root digest.Digest, extra []digest.Digest) error {
	missing, err := missingContent(ctx, cas, kind, root)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		more, err := cas.FindMissing(ctx, extra)
		if err != nil {
			return err
		}
		missing = append(missing, more...)
	}
	if len(missing) == 0 {
		return nil
	}
	sorted := digest.NewSet(missing...).Sorted()
	pf := &errdetails.PreconditionFailure{}
	for _, m := range sorted {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{Type: "MISSING", Subject: "blobs/" + m.String()})
	}
	st, err := status.New(codes.FailedPrecondition, "referenced content is not in the CAS, e.g. "+sorted[0].String()).WithDetails(pf)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "referenced content is not in the CAS, e.g. %s", sorted[0])
	}
	return st.Err()
}
