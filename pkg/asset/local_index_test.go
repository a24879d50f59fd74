package asset_test

import (
	"testing"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"

	"github.com/castd/castd/pkg/store/disk"
)

func TestExpiry(t *testing.T) {
	clock := newClock()
	n := startNode(t, nodeConfig{clock: clock})
	ctx := testutil.Context(t)
	d := putBlob(t, n.cas, []byte("expiring"))
	pushedAt := clock.Now()
	push := func(uri string, expire time.Time) {
		t.Helper()
		if _, err := n.push.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{uri}, BlobDigest: d.Proto(), ExpireAt: timestamppb.New(expire)}); err != nil {
			t.Fatal(err)
		}
	}
	push("https://x.example/short", pushedAt.Add(time.Hour))
	push("https://x.example/extended", pushedAt.Add(time.Hour))
	push("https://x.example/extended", pushedAt.Add(3*time.Hour))
	clock.Advance(2 * time.Hour)
	tests := []struct {
		name   string
		why    string
		uri    string
		oldest time.Time
		want   codes.Code
	}{
		{"expired", "expire_at has passed, so the entry must not be served", "https://x.example/short", time.Time{}, codes.NotFound},
		{"expiry extended by a later push", "a later push may change the expiry", "https://x.example/extended", time.Time{}, codes.OK},
		{"older than oldest_content_accepted", "the client asked for content pushed after it", "https://x.example/extended", pushedAt.Add(time.Second), codes.NotFound},
		{"newer than oldest_content_accepted", "content pushed after the bound is fine", "https://x.example/extended", pushedAt.Add(-time.Second), codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			req := &assetpb.FetchBlobRequest{Uris: []string{tc.uri}}
			if !tc.oldest.IsZero() {
				req.OldestContentAccepted = timestamppb.New(tc.oldest)
			}
			resp, err := n.fetch.FetchBlob(ctx, req)
			wantCode(t, err, tc.want)
			if tc.want == codes.OK && !resp.GetExpiresAt().AsTime().Equal(pushedAt.Add(3*time.Hour)) {
				t.Fatalf("expires_at %v, want %v", resp.GetExpiresAt().AsTime(), pushedAt.Add(3*time.Hour))
			}
		})
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := testutil.Context(t)
	open := func() (*disk.Store, *node) {
		l, err := disk.Open(dir, disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		idx := asset.NewLocalIndex(l.Records("assets"), asset.LocalOptions{})
		return l, startNode(t, nodeConfig{cas: l, index: idx})
	}
	l, n := open()
	tr := putTree(t, l, "persisted", true)
	uri := "urn:fdc:castd.example:artifact:foo/bar"
	if _, err := n.push.PushDirectory(ctx, &assetpb.PushDirectoryRequest{Uris: []string{uri}, Qualifiers: q("kind", "artifact"), RootDirectoryDigest: tr.root.Proto()}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, n2 := open()
	t.Cleanup(func() { _ = l2.Close() })
	t.Run("fetch after reopen", func(t *testing.T) {
		t.Log("an acknowledged push survives a daemon restart")
		resp, err := n2.fetch.FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{Uris: []string{uri}, Qualifiers: q("kind", "artifact")})
		if err != nil || !proto.Equal(resp.GetRootDirectoryDigest(), tr.root.Proto()) {
			t.Fatalf("FetchDirectory = %v, %v; want root %s", resp, err, tr.root)
		}
	})
}
