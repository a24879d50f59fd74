package asset

import (
	"context"
	"log/slog"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Resolver returns the asset index and the CAS serving one instance name
// (project): normally NewFanout over the project's index remotes and the
// project's fan-out CAS. An unknown instance is an error fit to return to
// the client. It is called once per request and must be cheap and safe for
// concurrent use.
type Resolver func(ctx context.Context, instance string) (Index, store.CAS, error)

// Options tune the server. The zero value is usable.
type Options struct {
	// Logger receives hits that were dropped because their content is
	// gone; nil means slog.Default().
	Logger *slog.Logger
	// DigestFunctions are the digest functions requests may use (the
	// set castd advertises in Capabilities); zero means every function
	// castd verifies. Another is INVALID_ARGUMENT naming digest_function.
	DigestFunctions digest.FunctionSet
}

// Server implements the Remote Asset Fetch and Push services over the
// indexes and CASes a Resolver hands out. Fetch never downloads anything:
// an asset no index knows is NOT_FOUND, and so is one whose content is no
// longer in (or fetchable through) the instance's CAS, because a reference
// to content that is gone is worse than a miss. The request's timeout field
// is therefore irrelevant and ignored. Push records an association only
// when its content is present. Qualifiers must match exactly. Safe for
// concurrent use.
type Server struct {
	fetch *fetchServer
	push  *pushServer
}

// NewServer returns the Remote Asset server over resolve.
func NewServer(resolve Resolver, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{fetch: &fetchServer{resolve: resolve, opts: opts}, push: &pushServer{resolve: resolve, opts: opts}}
}

// Register adds the Fetch and Push services to s, typically the server
// grpcservers.NewServer built, so they share its socket and interceptors.
func (srv *Server) Register(s *grpc.Server) {
	assetpb.RegisterFetchServer(s, srv.fetch)
	assetpb.RegisterPushServer(s, srv.push)
}

type fetchServer struct {
	assetpb.UnimplementedFetchServer
	resolve Resolver
	opts    Options
}

// FetchBlob implements assetpb.FetchServer.
func (s *fetchServer) FetchBlob(ctx context.Context, req *assetpb.FetchBlobRequest) (*assetpb.FetchBlobResponse, error) {
	a, ref, err := s.fetch(ctx, Blob, req)
	if err != nil {
		return nil, err
	}
	return &assetpb.FetchBlobResponse{
		Status: &rpcstatus.Status{}, Uri: ref.URI, Qualifiers: a.Qualifiers, ExpiresAt: timestamp(ref.ExpireAt),
		BlobDigest: ref.Digest.Proto(), DigestFunction: a.Func.Proto(),
	}, nil
}

// FetchDirectory implements assetpb.FetchServer.
func (s *fetchServer) FetchDirectory(ctx context.Context, req *assetpb.FetchDirectoryRequest) (*assetpb.FetchDirectoryResponse, error) {
	a, ref, err := s.fetch(ctx, Directory, req)
	if err != nil {
		return nil, err
	}
	return &assetpb.FetchDirectoryResponse{
		Status: &rpcstatus.Status{}, Uri: ref.URI, Qualifiers: a.Qualifiers, ExpiresAt: timestamp(ref.ExpireAt),
		RootDirectoryDigest: ref.Digest.Proto(), DigestFunction: a.Func.Proto(),
	}, nil
}

// fetchRequest is what FetchBlobRequest and FetchDirectoryRequest share.
type fetchRequest interface {
	GetInstanceName() string
	GetUris() []string
	GetQualifiers() []*assetpb.Qualifier
	GetOldestContentAccepted() *timestamppb.Timestamp
	GetDigestFunction() repb.DigestFunction_Value
}

// fetch validates req, looks it up in the request's digest function and
// checks the content is complete.
func (s *fetchServer) fetch(ctx context.Context, kind Kind, req fetchRequest) (Asset, Ref, error) {
	fn, err := parseDigestFunction(req.GetDigestFunction(), "", s.opts.DigestFunctions)
	if err != nil {
		return Asset{}, Ref{}, err
	}
	a, err := parseAsset(kind, req.GetUris(), req.GetQualifiers())
	if err != nil {
		return Asset{}, Ref{}, err
	}
	a.Func = fn
	oldest, err := parseTime("oldest_content_accepted", req.GetOldestContentAccepted())
	if err != nil {
		return Asset{}, Ref{}, err
	}
	idx, cas, err := s.resolve(ctx, req.GetInstanceName())
	if err != nil {
		return Asset{}, Ref{}, err
	}
	ref, err := idx.Lookup(ctx, a, oldest)
	if err != nil {
		return Asset{}, Ref{}, err
	}
	if ref.Digest.Func != fn { // an index broke its contract; never answer in another function
		return Asset{}, Ref{}, status.Errorf(codes.Internal, "%s: the index answered with a %s digest", a, ref.Digest.Func)
	}
	if err := checkComplete(ctx, cas, a, ref); err != nil {
		s.opts.Logger.Debug("asset: index hit not served", "err", err)
		return Asset{}, Ref{}, err
	}
	return a, ref, nil
}

// timestamp converts t, leaving the zero time unset.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
