package asset_test

import (
	"context"
	"strings"
	"testing"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestBadInput(t *testing.T) {
	n := startNode(t, nodeConfig{})
	ctx := testutil.Context(t)
	good := putBlob(t, n.cas, []byte("content")).Proto()
	uris := []string{"https://x.example/a"}
	fetch := func(r *assetpb.FetchBlobRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := n.fetch.FetchBlob(ctx, r); return err }
	}
	fetchDir := func(r *assetpb.FetchDirectoryRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := n.fetch.FetchDirectory(ctx, r); return err }
	}
	push := func(r *assetpb.PushBlobRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := n.push.PushBlob(ctx, r); return err }
	}
	pushDir := func(r *assetpb.PushDirectoryRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := n.push.PushDirectory(ctx, r); return err }
	}
	tests := []struct {
		name  string
		why   string
		call  func(context.Context) error
		field string
	}{
		{"fetch without uris", "the API requires at least one URI", fetch(&assetpb.FetchBlobRequest{}), "uris"},
		{"fetch with an empty uri", "an empty key would match nothing sensible", fetch(&assetpb.FetchBlobRequest{Uris: []string{"https://x.example/a", ""}}), "uris[1]"},
		{"fetch with a relative uri", "a URI without scheme is a client bug", fetchDir(&assetpb.FetchDirectoryRequest{Uris: []string{"just/a/path"}}), "uris[0]"},
		{"fetch with a duplicate qualifier", "qualifier names must be unique", fetch(&assetpb.FetchBlobRequest{Uris: uris, Qualifiers: q("a", "1", "b", "2", "a", "3")}), "qualifiers[2].name"},
		{"fetch with an unnamed qualifier", "a qualifier needs a name", fetch(&assetpb.FetchBlobRequest{Uris: uris, Qualifiers: q("a", "1", "", "2")}), "qualifiers[1].name"},
		{"fetch with an unverifiable digest function", "castd cannot verify VSO digests", fetch(&assetpb.FetchBlobRequest{Uris: uris, DigestFunction: repb.DigestFunction_VSO}), "digest_function"},
		{"push with an unverifiable digest function", "castd cannot verify VSO digests", push(&assetpb.PushBlobRequest{Uris: uris, BlobDigest: good, DigestFunction: repb.DigestFunction_VSO}), "digest_function"},
		{"push with a function the digest is not in", "a BLAKE3 hash is 64 characters, a SHA-1 one is not", push(&assetpb.PushBlobRequest{Uris: uris, BlobDigest: good, DigestFunction: repb.DigestFunction_SHA1}), "blob_digest"},
		{"fetch with a bad oldest_content_accepted", "an out-of-range timestamp is invalid", fetch(&assetpb.FetchBlobRequest{Uris: uris, OldestContentAccepted: &timestamppb.Timestamp{Nanos: -1}}), "oldest_content_accepted"},
		{"push without blob digest", "a push must name its content", push(&assetpb.PushBlobRequest{Uris: uris}), "blob_digest"},
		{"push with a bad blob digest", "hashes are 64 lower-case hex characters", push(&assetpb.PushBlobRequest{Uris: uris, BlobDigest: &repb.Digest{Hash: "ABC", SizeBytes: 3}}), "blob_digest"},
		{"push directory with a bad root", "negative sizes are invalid", pushDir(&assetpb.PushDirectoryRequest{Uris: uris, RootDirectoryDigest: &repb.Digest{Hash: good.GetHash(), SizeBytes: -1}}), "root_directory_digest"},
		{"push with a bad reference", "hints are validated like the main digest", push(&assetpb.PushBlobRequest{Uris: uris, BlobDigest: good, ReferencesBlobs: []*repb.Digest{good, {Hash: "x"}}}), "references_blobs[1]"},
		{"push without uris", "the association needs a key", push(&assetpb.PushBlobRequest{BlobDigest: good}), "uris"},
		{"push with a duplicate qualifier", "qualifier names must be unique on push too", pushDir(&assetpb.PushDirectoryRequest{Uris: uris, Qualifiers: q("a", "1", "a", "1"), RootDirectoryDigest: good}), "qualifiers[1].name"},
		{"push with a bad expire_at", "an out-of-range timestamp is invalid", push(&assetpb.PushBlobRequest{Uris: uris, BlobDigest: good, ExpireAt: &timestamppb.Timestamp{Seconds: -1 << 62}}), "expire_at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			err := tc.call(ctx)
			wantCode(t, err, codes.InvalidArgument)
			if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, tc.field+":") {
				t.Fatalf("message %q does not name field %s", msg, tc.field)
			}
		})
	}
}
