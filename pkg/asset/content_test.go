package asset_test

import (
	"strconv"
	"strings"
	"testing"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
)

func TestPushRequiresContent(t *testing.T) {
	n := startNode(t, nodeConfig{})
	ctx := testutil.Context(t)
	incomplete := putTree(t, n.cas, "no files", false)
	absent := digest.OfBytes([]byte("never stored"))
	tests := []struct {
		name    string
		why     string
		push    func() error
		missing []digest.Digest
	}{
		{"directory missing file blobs", "a tree is pushable only when every file is in the CAS", func() error {
			_, err := n.push.PushDirectory(ctx, &assetpb.PushDirectoryRequest{Uris: []string{"https://x.example/tree"}, RootDirectoryDigest: incomplete.root.Proto()})
			return err
		}, []digest.Digest{incomplete.a, incomplete.b}},
		{"blob missing", "a blob must be uploaded before it is named", func() error {
			_, err := n.push.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{"https://x.example/blob"}, BlobDigest: absent.Proto()})
			return err
		}, []digest.Digest{absent}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			err := tc.push()
			wantCode(t, err, codes.FailedPrecondition)
			got := digest.NewSet()
			for _, det := range status.Convert(err).Details() {
				for _, v := range det.(*errdetails.PreconditionFailure).GetViolations() {
					if v.GetType() != "MISSING" {
						t.Errorf("violation type %q, want MISSING", v.GetType())
					}
					got.Add(parseSubject(t, v.GetSubject()))
				}
			}
			if want := digest.NewSet(tc.missing...); len(got.Difference(want))+len(want.Difference(got)) != 0 {
				t.Fatalf("missing violations %v, want %v", got.Sorted(), want.Sorted())
			}
		})
	}
}

func TestFetchHidesGoneContent(t *testing.T) {
	n := startNode(t, nodeConfig{})
	ctx := testutil.Context(t)
	incomplete := putTree(t, n.cas, "half", false)
	putBlob(t, n.cas, incomplete.contentA) // b stays missing
	gone := digest.OfBytes([]byte("evicted blob"))
	// Record straight into the index, as if the content were evicted after
	// a push.
	rec := func(kind asset.Kind, uri string, d digest.Digest) {
		if err := n.index.Record(ctx, asset.Asset{Kind: kind, URIs: []string{uri}}, asset.Ref{Digest: d}); err != nil {
			t.Fatal(err)
		}
	}
	rec(asset.Directory, "https://x.example/tree", incomplete.root)
	rec(asset.Blob, "https://x.example/blob", gone)
	t.Run("directory with a missing file blob", func(t *testing.T) {
		t.Log("a tree with a hole must not be handed out")
		_, err := n.fetch.FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{Uris: []string{"https://x.example/tree"}})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("blob gone", func(t *testing.T) {
		t.Log("a reference to an evicted blob is a miss, not a dangling digest")
		_, err := n.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{"https://x.example/blob"}})
		wantCode(t, err, codes.NotFound)
	})
}

// parseSubject reads a "blobs/HASH/SIZE" violation subject.
func parseSubject(t *testing.T, s string) digest.Digest {
	t.Helper()
	rest, ok := strings.CutPrefix(s, "blobs/")
	hash, sizeText, ok2 := strings.Cut(rest, "/")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if !ok || !ok2 || err != nil {
		t.Fatalf("subject %q is not blobs/HASH/SIZE", s)
	}
	d, err := digest.New(hash, size)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
