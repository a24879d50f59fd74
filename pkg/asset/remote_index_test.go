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
		{"other digest function", "an answer in a function not asked for is refused", &assetpb.FetchBlobResponse{BlobDigest: good.Proto(), DigestFunction: repb.DigestFunction_SHA1}},
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

// recordingClient answers every FetchBlob with resp and keeps the request.
type recordingClient struct {
	asset.Client
	resp *assetpb.FetchBlobResponse
	req  *assetpb.FetchBlobRequest
}

func (c *recordingClient) FetchBlob(_ context.Context, req *assetpb.FetchBlobRequest) (*assetpb.FetchBlobResponse, error) {
	c.req = req
	return c.resp, nil
}

func TestRemoteAnswerFunction(t *testing.T) {
	ctx := testutil.Context(t)
	b3 := digest.OfBytesIn(digest.BLAKE3, []byte("x"))
	sha := digest.OfBytes([]byte("x"))
	tests := []struct {
		name, why string
		asked     digest.Function
		sent      repb.DigestFunction_Value // digest_function of the request
		answer    *assetpb.FetchBlobResponse
		want      codes.Code
		wantD     digest.Digest
	}{
		{"blake3 answered in blake3", "an answer in the function asked is taken, as a BLAKE3 digest", digest.BLAKE3, repb.DigestFunction_BLAKE3,
			&assetpb.FetchBlobResponse{BlobDigest: b3.Proto(), DigestFunction: repb.DigestFunction_BLAKE3}, codes.OK, b3},
		{"blake3 answered unset", "unset means SHA-256: a remote that ignored the function answered with a SHA-256 digest", digest.BLAKE3, repb.DigestFunction_BLAKE3,
			&assetpb.FetchBlobResponse{BlobDigest: b3.Proto()}, codes.Internal, digest.Digest{}},
		{"blake3 answered in sha256", "a SHA-256 digest must never be filed as BLAKE3", digest.BLAKE3, repb.DigestFunction_BLAKE3,
			&assetpb.FetchBlobResponse{BlobDigest: sha.Proto(), DigestFunction: repb.DigestFunction_SHA256}, codes.Internal, digest.Digest{}},
		{"sha256 answered in blake3", "a BLAKE3 digest must never be filed as SHA-256", digest.SHA256, repb.DigestFunction_UNKNOWN,
			&assetpb.FetchBlobResponse{BlobDigest: b3.Proto(), DigestFunction: repb.DigestFunction_BLAKE3}, codes.Internal, digest.Digest{}},
		{"sha256 answered in sha256", "SHA-256 lookups go out as before (unset) and take an explicit SHA-256 answer", digest.SHA256, repb.DigestFunction_UNKNOWN,
			&assetpb.FetchBlobResponse{BlobDigest: sha.Proto(), DigestFunction: repb.DigestFunction_SHA256}, codes.OK, sha},
		{"sha1 answered with a blake3-length hash", "the digest is parsed in the function asked", digest.SHA1, repb.DigestFunction_SHA1,
			&assetpb.FetchBlobResponse{BlobDigest: b3.Proto(), DigestFunction: repb.DigestFunction_SHA1}, codes.Internal, digest.Digest{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			c := &recordingClient{resp: tc.answer}
			ref, err := asset.NewRemoteIndex(c).Lookup(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{"https://a.example/x"}, Func: tc.asked}, time.Time{})
			wantCode(t, err, tc.want)
			if c.req.GetDigestFunction() != tc.sent {
				t.Fatalf("request digest_function %s, want %s", c.req.GetDigestFunction(), tc.sent)
			}
			if tc.want == codes.OK && ref.Digest != tc.wantD {
				t.Fatalf("ref digest %+v, want %+v", ref.Digest, tc.wantD)
			}
		})
	}
}
