package asset_test

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestBLAKE3PushThenFetch(t *testing.T) {
	n := startNode(t, nodeConfig{})
	ctx := testutil.Context(t)
	t.Run("blob", func(t *testing.T) {
		t.Log("a BLAKE3 client pushes and fetches in BLAKE3; castd answers in the function asked")
		d := putBlobIn(t, n.cas, digest.BLAKE3, []byte("blake3 tarball"))
		uri := "https://x.example/b3.tar"
		ref := putBlobIn(t, n.cas, digest.BLAKE3, []byte("a referenced blob"))
		if _, err := n.push.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{uri}, BlobDigest: d.Proto(), ReferencesBlobs: []*repb.Digest{ref.Proto()}, DigestFunction: repb.DigestFunction_BLAKE3}); err != nil {
			t.Fatal(err)
		}
		resp, err := n.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{uri}, DigestFunction: repb.DigestFunction_BLAKE3})
		if err != nil || !proto.Equal(resp.GetBlobDigest(), d.Proto()) || resp.GetDigestFunction() != repb.DigestFunction_BLAKE3 {
			t.Fatalf("FetchBlob = %v, %v; want %s in BLAKE3", resp, err, d)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Log("the tree check reads every Directory and file digest of a BLAKE3 tree in BLAKE3")
		tr := putTreeIn(t, n.cas, digest.BLAKE3, "b3", true)
		uri := "urn:fdc:castd.example:source:b3"
		if _, err := n.push.PushDirectory(ctx, &assetpb.PushDirectoryRequest{Uris: []string{uri}, RootDirectoryDigest: tr.root.Proto(), DigestFunction: repb.DigestFunction_BLAKE3}); err != nil {
			t.Fatal(err)
		}
		resp, err := n.fetch.FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{Uris: []string{uri}, DigestFunction: repb.DigestFunction_BLAKE3})
		if err != nil || !proto.Equal(resp.GetRootDirectoryDigest(), tr.root.Proto()) || resp.GetDigestFunction() != repb.DigestFunction_BLAKE3 {
			t.Fatalf("FetchDirectory = %v, %v; want %s in BLAKE3", resp, err, tr.root)
		}
	})
	t.Run("blake3 tree missing a file", func(t *testing.T) {
		t.Log("a BLAKE3 tree whose file is absent is refused, naming the BLAKE3 blob")
		tr := putTreeIn(t, n.cas, digest.BLAKE3, "b3 partial", false)
		_, err := n.push.PushDirectory(ctx, &assetpb.PushDirectoryRequest{Uris: []string{"urn:fdc:castd.example:source:partial"}, RootDirectoryDigest: tr.root.Proto(), DigestFunction: repb.DigestFunction_BLAKE3})
		wantCode(t, err, codes.FailedPrecondition)
		if !strings.Contains(status.Convert(err).Message(), "blake3/") {
			t.Fatalf("error %q does not name a blake3/ blob", err)
		}
	})
	t.Run("push infers sha1", func(t *testing.T) {
		t.Log("a push may leave digest_function unset for a function its hash length tells")
		d := putBlobIn(t, n.cas, digest.SHA1, []byte("sha1 content"))
		if _, err := n.push.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{"https://x.example/sha1"}, BlobDigest: d.Proto()}); err != nil {
			t.Fatal(err)
		}
		resp, err := n.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{"https://x.example/sha1"}, DigestFunction: repb.DigestFunction_SHA1})
		if err != nil || !proto.Equal(resp.GetBlobDigest(), d.Proto()) {
			t.Fatalf("FetchBlob = %v, %v; want %s", resp, err, d)
		}
	})
}

func TestFunctionsKeptApart(t *testing.T) {
	n := startNode(t, nodeConfig{})
	ctx := testutil.Context(t)
	uri := "https://x.example/both.tar"
	content := []byte("same bytes, two functions")
	sha := putBlobIn(t, n.cas, digest.SHA256, content)
	b3 := putBlobIn(t, n.cas, digest.BLAKE3, content)
	push := func(d digest.Digest, fn repb.DigestFunction_Value, uris ...string) {
		t.Helper()
		if _, err := n.push.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: uris, BlobDigest: d.Proto(), DigestFunction: fn}); err != nil {
			t.Fatal(err)
		}
	}
	push(sha, repb.DigestFunction_UNKNOWN, uri, "https://x.example/sha-only")
	push(b3, repb.DigestFunction_BLAKE3, uri, "https://x.example/b3-only")
	tests := []struct {
		name, why string
		uri       string
		fn        repb.DigestFunction_Value
		want      codes.Code
		wantD     digest.Digest
		wantFn    repb.DigestFunction_Value
	}{
		{"sha256 of a uri with both", "a SHA-256 client gets the SHA-256 association", uri, repb.DigestFunction_SHA256, codes.OK, sha, repb.DigestFunction_SHA256},
		{"unset of a uri with both", "unset means SHA-256", uri, repb.DigestFunction_UNKNOWN, codes.OK, sha, repb.DigestFunction_SHA256},
		{"blake3 of a uri with both", "a BLAKE3 client gets the BLAKE3 association, not the SHA-256 one pushed first", uri, repb.DigestFunction_BLAKE3, codes.OK, b3, repb.DigestFunction_BLAKE3},
		{"blake3 of a sha256-only uri", "a SHA-256 association never answers a BLAKE3 fetch", "https://x.example/sha-only", repb.DigestFunction_BLAKE3, codes.NotFound, digest.Digest{}, 0},
		{"sha256 of a blake3-only uri", "a BLAKE3 association never answers a SHA-256 fetch", "https://x.example/b3-only", repb.DigestFunction_SHA256, codes.NotFound, digest.Digest{}, 0},
		{"sha512 of a uri with both", "no association in SHA-512 exists", uri, repb.DigestFunction_SHA512, codes.NotFound, digest.Digest{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			resp, err := n.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{tc.uri}, DigestFunction: tc.fn})
			wantCode(t, err, tc.want)
			if tc.want == codes.OK && (!proto.Equal(resp.GetBlobDigest(), tc.wantD.Proto()) || resp.GetDigestFunction() != tc.wantFn) {
				t.Fatalf("FetchBlob = %v; want %s in %s", resp, tc.wantD, tc.wantFn)
			}
		})
	}
}

func TestDigestFunctionRefused(t *testing.T) {
	n := startNode(t, nodeConfig{functions: digest.SetOf(digest.SHA256)})
	ctx := testutil.Context(t)
	d := putBlobIn(t, n.cas, digest.BLAKE3, []byte("x"))
	for _, tc := range []struct {
		name, why string
		call      func() error
	}{
		{"fetch in vso", "castd cannot verify VSO", func() error {
			_, err := n.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{"https://x.example/a"}, DigestFunction: repb.DigestFunction_VSO})
			return err
		}},
		{"fetch in a function this castd does not take", "cache.digest-functions limits the Remote Asset API too", func() error {
			_, err := n.fetch.FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{Uris: []string{"https://x.example/a"}, DigestFunction: repb.DigestFunction_BLAKE3})
			return err
		}},
		{"push in a function this castd does not take", "cache.digest-functions limits pushes too", func() error {
			_, err := n.push.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{"https://x.example/a"}, BlobDigest: d.Proto(), DigestFunction: repb.DigestFunction_BLAKE3})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			err := tc.call()
			wantCode(t, err, codes.InvalidArgument)
			if !strings.HasPrefix(status.Convert(err).Message(), "digest_function:") {
				t.Fatalf("message %q does not name digest_function", status.Convert(err).Message())
			}
		})
	}
}

// v1Key is the local index key (qualifiers sorted by name) of a SHA-256 association as castd wrote it
// before it knew other digest functions.
func v1Key(kind asset.Kind, uri string, qs ...[2]string) []byte {
	buf := append([]byte("castd-asset-v1"), byte(kind))
	add := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	add(uri)
	for _, q := range qs {
		add(q[0])
		add(q[1])
	}
	sum := sha256.Sum256(buf)
	return sum[:]
}

// v1Record is a local index value as castd wrote it before it knew other
// digest functions: version 1, recorded, expiry, size, hex hash.
func v1Record(d digest.Digest, recorded time.Time) []byte {
	b := []byte{1}
	b = binary.BigEndian.AppendUint64(b, uint64(recorded.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(d.Size))
	return append(b, d.Hash...)
}

func TestOldIndexRecords(t *testing.T) {
	dir := t.TempDir()
	ctx := testutil.Context(t)
	open := func() (*disk.Store, asset.Records) {
		l, err := disk.Open(dir, disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return l, l.Records("assets")
	}
	l, recs := open()
	d := putBlob(t, l, []byte("pushed by an older castd"))
	recorded := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	uri := "https://x.example/old.tar"
	if err := recs.Put(v1Key(asset.Blob, uri, [2]string{"a", "1"}, [2]string{"b", "2"}), v1Record(d, recorded)); err != nil {
		t.Fatal(err)
	}
	idx := asset.NewLocalIndex(recs, asset.LocalOptions{})
	t.Run("old record reads back", func(t *testing.T) {
		t.Log("an index written before digest functions opens unchanged")
		ref, err := idx.Lookup(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{uri}, Qualifiers: q("b", "2", "a", "1")}, time.Time{})
		if err != nil || ref.Digest != d || !ref.Recorded.Equal(recorded) {
			t.Fatalf("Lookup = %+v, %v; want %s recorded %v", ref, err, d, recorded)
		}
	})
	t.Run("old record not a blake3 hit", func(t *testing.T) {
		t.Log("an old (SHA-256) record never answers a BLAKE3 lookup")
		_, err := idx.Lookup(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{uri}, Qualifiers: q("a", "1", "b", "2"), Func: digest.BLAKE3}, time.Time{})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("sha256 records keep the old form", func(t *testing.T) {
		t.Log("a SHA-256 record written now is byte-identical to the old form, so an older castd reads it too")
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := idx.Record(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{"https://x.example/new.tar"}}, asset.Ref{Digest: d, Recorded: now}); err != nil {
			t.Fatal(err)
		}
		got, err := recs.Get(v1Key(asset.Blob, "https://x.example/new.tar"))
		if err != nil || string(got) != string(v1Record(d, now)) {
			t.Fatalf("record %x, %v; want %x", got, err, v1Record(d, now))
		}
	})
	b3 := digest.OfBytesIn(digest.BLAKE3, []byte("pushed by a blake3 client")) // the index does not look at the CAS
	if err := idx.Record(ctx, asset.Asset{Kind: asset.Directory, URIs: []string{uri}, Func: digest.BLAKE3}, asset.Ref{Digest: b3}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, recs2 := open()
	t.Cleanup(func() { _ = l2.Close() })
	t.Run("blake3 record survives reopen", func(t *testing.T) {
		t.Log("the function is kept in the record, not only in memory")
		idx := asset.NewLocalIndex(recs2, asset.LocalOptions{})
		ref, err := idx.Lookup(ctx, asset.Asset{Kind: asset.Directory, URIs: []string{uri}, Func: digest.BLAKE3}, time.Time{})
		if err != nil || ref.Digest != b3 {
			t.Fatalf("Lookup = %+v, %v; want %s", ref, err, b3)
		}
		_, err = idx.Lookup(ctx, asset.Asset{Kind: asset.Directory, URIs: []string{uri}}, time.Time{})
		wantCode(t, err, codes.NotFound)
	})
}
