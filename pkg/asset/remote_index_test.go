package asset_test

import (
	"context"
	"testing"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
)

// lyingClient answers every FetchBlob with resp.
type lyingClient struct {
	asset.Client
	resp *assetpb.FetchBlobResponse
}

func (c lyingClient) FetchBlob(context.Context, *assetpb.FetchBlobRequest) (*assetpb.FetchBlobResponse, error) {
	return c.resp, nil
}

func TestRemoteBadAnswers(t *testing.T) {
	ctx := testutil.Context(t)
	good := digest.OfBytes([]byte("x"))
	a := asset.Asset{Kind: asset.Blob, URIs: []string{"https://a.example/x"}}
	tests := []struct {
		name string
		why  string
		resp *assetpb.FetchBlobResponse
	}{
		{"malformed digest", "bad data from upstream must never be stored", &assetpb.FetchBlobResponse{BlobDigest: &repb.Digest{Hash: "nothex", SizeBytes: 1}}},
		{"no digest", "an OK answer without a digest is bad data", &assetpb.FetchBlobResponse{}},
		{"uri not asked for", "a remote must answer for one of the URIs asked", &assetpb.FetchBlobResponse{Uri: "https://evil.example/x", BlobDigest: good.Proto()}},
		{"other digest function", "castd only stores SHA-256 references", &assetpb.FetchBlobResponse{BlobDigest: good.Proto(), DigestFunction: repb.DigestFunction_SHA1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			local := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
			_, err := asset.NewRemoteIndex(lyingClient{resp: tc.resp}).Lookup(ctx, a, time.Time{})
			wantCode(t, err, codes.Internal)
			f := asset.NewFanout(local, []asset.Tier{{Name: "liar", Index: asset.NewRemoteIndex(lyingClient{resp: tc.resp})}}, asset.FanoutOptions{})
			_, err = f.Lookup(ctx, a, time.Time{})
			wantCode(t, err, codes.Internal) // the only remote could not answer usefully: its code, not a miss
			_, err = local.Lookup(ctx, a, time.Time{})
			wantCode(t, err, codes.NotFound)
		})
	}
}
