package asset_test

import (
	"testing"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	"github.com/castd/castd/internal/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func TestPushThenFetchBlob(t *testing.T) {
	n := startNode(t, nodeConfig{})
	ctx := testutil.Context(t)
	d := putBlob(t, n.cas, []byte("tarball bytes"))
	_, err := n.push.PushBlob(ctx, &assetpb.PushBlobRequest{
		Uris:       []string{"https://mirror-1.example/x.tar.gz", "https://mirror-2.example/x.tar.gz"},
		Qualifiers: q("checksum.sri", "sha256-abc", "resource_type", "application/x-tar"),
		BlobDigest: d.Proto(),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		why     string
		uris    []string
		quals   []*assetpb.Qualifier
		want    codes.Code
		wantURI string
	}{
		{"first pushed uri", "the plain round trip", []string{"https://mirror-1.example/x.tar.gz"}, q("checksum.sri", "sha256-abc", "resource_type", "application/x-tar"), codes.OK, "https://mirror-1.example/x.tar.gz"},
		{"second pushed uri", "every pushed URI is its own key", []string{"https://mirror-2.example/x.tar.gz"}, q("checksum.sri", "sha256-abc", "resource_type", "application/x-tar"), codes.OK, "https://mirror-2.example/x.tar.gz"},
		{"unknown uri then pushed uri", "any one of the asked URIs may match; the response names it", []string{"https://other.example/x", "https://mirror-2.example/x.tar.gz"}, q("checksum.sri", "sha256-abc", "resource_type", "application/x-tar"), codes.OK, "https://mirror-2.example/x.tar.gz"},
		{"qualifiers reordered", "qualifier order carries no meaning", []string{"https://mirror-1.example/x.tar.gz"}, q("resource_type", "application/x-tar", "checksum.sri", "sha256-abc"), codes.OK, "https://mirror-1.example/x.tar.gz"},
		{"qualifier value differs", "a different checksum is different content", []string{"https://mirror-1.example/x.tar.gz"}, q("checksum.sri", "sha256-zzz", "resource_type", "application/x-tar"), codes.NotFound, ""},
		{"qualifier missing", "qualifiers must match exactly, not as a subset", []string{"https://mirror-1.example/x.tar.gz"}, q("resource_type", "application/x-tar"), codes.NotFound, ""},
		{"unknown uri", "castd never downloads; unknown is a miss", []string{"https://nowhere.example/y"}, nil, codes.NotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			resp, err := n.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: tc.uris, Qualifiers: tc.quals})
			wantCode(t, err, tc.want)
			if tc.want != codes.OK {
				return
			}
			if resp.GetStatus().GetCode() != 0 || !proto.Equal(resp.GetBlobDigest(), d.Proto()) || resp.GetUri() != tc.wantURI {
				t.Fatalf("response %v, want OK, digest %s, uri %s", resp, d, tc.wantURI)
			}
		})
	}
}

func TestPushThenFetchDirectory(t *testing.T) {
	n := startNode(t, nodeConfig{})
	ctx := testutil.Context(t)
	tr := putTree(t, n.cas, "complete", true)
	uri := "urn:fdc:castd.example:source:foo"
	if _, err := n.push.PushDirectory(ctx, &assetpb.PushDirectoryRequest{Uris: []string{uri}, RootDirectoryDigest: tr.root.Proto()}); err != nil {
		t.Fatal(err)
	}
	t.Run("fetch directory", func(t *testing.T) {
		t.Log("a pushed tree comes back with its root digest")
		resp, err := n.fetch.FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{Uris: []string{uri}})
		if err != nil || !proto.Equal(resp.GetRootDirectoryDigest(), tr.root.Proto()) || resp.GetUri() != uri {
			t.Fatalf("FetchDirectory = %v, %v; want root %s", resp, err, tr.root)
		}
	})
	t.Run("fetch as blob", func(t *testing.T) {
		t.Log("blob and directory assets are separate namespaces")
		_, err := n.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{uri}})
		wantCode(t, err, codes.NotFound)
	})
}
