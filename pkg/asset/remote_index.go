package asset

import (
	"context"
	"slices"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/castd/castd/pkg/digest"
)

// Client is one remote's Remote Asset API as castd uses it;
// *grpcclient.AssetClient implements it. Fetch calls report a miss as
// NOT_FOUND (also when the remote put it in the response's status field) and
// set the remote's own instance name. A request in a digest function the
// remote does not take is not sent: a Fetch is NOT_FOUND, a Push a
// *store.UnsupportedFunctionError.
type Client interface {
	FetchBlob(ctx context.Context, req *assetpb.FetchBlobRequest) (*assetpb.FetchBlobResponse, error)
	FetchDirectory(ctx context.Context, req *assetpb.FetchDirectoryRequest) (*assetpb.FetchDirectoryResponse, error)
	PushBlob(ctx context.Context, req *assetpb.PushBlobRequest) error
	PushDirectory(ctx context.Context, req *assetpb.PushDirectoryRequest) error
}

// NewRemoteIndex returns the asset index of one index remote. Lookup is one
// Fetch call with all URIs; Record is one Push call; both carry the
// asset's digest function (left unset for SHA-256, as before castd knew
// others). A reference the remote answers with is checked (a valid digest
// in the function asked for, a URI that was asked for) and
// otherwise refused as INTERNAL, so bad data from upstream never reaches the
// local index. Whether the content exists is not checked here (see
// NewCompletenessCheckingIndex). Safe for concurrent use if c is.
func NewRemoteIndex(c Client) Index { return &remoteIndex{c: c} }

type remoteIndex struct{ c Client }

// fetchAnswer is what Lookup needs from either Fetch response.
type fetchAnswer interface {
	GetUri() string
	GetExpiresAt() *timestamppb.Timestamp
}

func (r *remoteIndex) Lookup(ctx context.Context, a Asset, oldest time.Time) (Ref, error) {
	var oldestPB *timestamppb.Timestamp
	if !oldest.IsZero() {
		oldestPB = timestamppb.New(oldest)
	}
	fn := requestFunction(a.Func)
	if a.Kind == Directory {
		resp, err := r.c.FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{Uris: a.URIs, Qualifiers: a.Qualifiers, OldestContentAccepted: oldestPB, DigestFunction: fn})
		if err != nil {
			return Ref{}, err
		}
		return refFromAnswer(a, resp, resp.GetRootDirectoryDigest(), resp.GetDigestFunction())
	}
	resp, err := r.c.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: a.URIs, Qualifiers: a.Qualifiers, OldestContentAccepted: oldestPB, DigestFunction: fn})
	if err != nil {
		return Ref{}, err
	}
	return refFromAnswer(a, resp, resp.GetBlobDigest(), resp.GetDigestFunction())
}

// requestFunction is the digest_function field for f: unset for SHA-256,
// so SHA-256 requests stay what they were before castd knew other
// functions.
func requestFunction(f digest.Function) repb.DigestFunction_Value {
	if f == digest.SHA256 {
		return repb.DigestFunction_UNKNOWN
	}
	return f.Proto()
}

// refFromAnswer validates a remote's answer, which must be in a.Func (an
// unset digest_function means SHA-256, as the Remote Asset API says). An
// empty uri means the remote did not say which URI matched; the first one
// asked for is assumed.
func refFromAnswer(a Asset, resp fetchAnswer, pd *repb.Digest, fn repb.DigestFunction_Value) (Ref, error) {
	got, ok := digest.SHA256, true
	if fn != repb.DigestFunction_UNKNOWN {
		got, ok = digest.FunctionFromProto(fn)
	}
	if !ok || got != a.Func {
		return Ref{}, status.Errorf(codes.Internal, "%s: remote answered with digest function %s, asked for %s", a, fn, a.Func.Proto())
	}
	d, err := digest.FromProtoIn(a.Func, pd)
	if err != nil {
		return Ref{}, status.Errorf(codes.Internal, "%s: remote answered with a bad digest: %v", a, status.Convert(err).Message())
	}
	ref := Ref{Digest: d, URI: resp.GetUri()}
	if ref.URI == "" {
		ref.URI = a.URIs[0]
	} else if !slices.Contains(a.URIs, ref.URI) {
		return Ref{}, status.Errorf(codes.Internal, "%s: remote answered for URI %q, which was not asked for", a, ref.URI)
	}
	if e := resp.GetExpiresAt(); e != nil {
		if err := e.CheckValid(); err != nil {
			return Ref{}, status.Errorf(codes.Internal, "%s: remote answered with a bad expires_at: %v", a, err)
		}
		ref.ExpireAt = e.AsTime()
	}
	return ref, nil
}

func (r *remoteIndex) Record(ctx context.Context, a Asset, ref Ref) error {
	var expire *timestamppb.Timestamp
	if !ref.ExpireAt.IsZero() {
		expire = timestamppb.New(ref.ExpireAt)
	}
	fn := requestFunction(ref.Digest.Func)
	if a.Kind == Directory {
		return r.c.PushDirectory(ctx, &assetpb.PushDirectoryRequest{Uris: a.URIs, Qualifiers: a.Qualifiers, ExpireAt: expire, RootDirectoryDigest: ref.Digest.Proto(), DigestFunction: fn})
	}
	return r.c.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: a.URIs, Qualifiers: a.Qualifiers, ExpireAt: expire, BlobDigest: ref.Digest.Proto(), DigestFunction: fn})
}
