package casd_test

import (
	"slices"
	"strings"
	"testing"

	rapb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/casd"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/casdir"
)

// newStorageEnv is a daemon whose instance "" is a proxy in front of url
// (--cas-remote).
func newStorageEnv(t *testing.T, url string) *env {
	t.Helper()
	return newEnvWith(t, casdir.Options{ProtectSessionBlobs: true}, func(d *casd.Daemon) {
		d.UseStorage(&casd.Remote{URL: url, RetryLimit: 1, RetryDelay: 1})
	})
}

func TestStorageServiceProxiesInstanceEmpty(t *testing.T) {
	// With --cas-remote, instance "" fetches misses from the storage
	// service into the cache directory and uploads captures to it (not
	// with skip_upload); Remote Asset probes stay local.
	up, url := newUpstream(t)
	e := newStorageEnv(t, url)
	only := testutil.Put(t, up.store, []byte("only on the storage-service")).Proto()
	if got := fetchOrUpload(t, e, "", false, only); len(got) != 0 {
		t.Fatalf("FetchMissingBlobs failures %v, want none", got)
	}
	if string(e.readBlob(t, only)) != "only on the storage-service" {
		t.Fatal("the fetched blob is not in the cache directory")
	}
	dir := t.TempDir()
	sent := writeFile(t, dir, "sent", "uploaded on capture", 0o644)
	kept := writeFile(t, dir, "kept", "kept local by skip_upload", 0o644)
	for _, c := range []struct {
		path string
		skip bool
	}{{sent, false}, {kept, true}} {
		resp, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{Path: []string{c.path}, SkipUpload: c.skip})
		if err != nil || resp.Responses[0].GetStatus().GetCode() != 0 {
			t.Fatalf("CaptureFiles %s: %v %v", c.path, resp, err)
		}
		d, _ := digest.FromProto(resp.Responses[0].Digest)
		missing, err := up.store.FindMissing(ctx(t), []digest.Digest{d})
		if err != nil {
			t.Fatal(err)
		}
		if onRemote := len(missing) == 0; onRemote == c.skip {
			t.Fatalf("%s (skip_upload %v): on the storage-service %v", c.path, c.skip, onRemote)
		}
	}
	writeFile(t, dir, "tree/sub/leaf", "a leaf", 0o644)
	ct, err := e.local.CaptureTree(ctx(t), &localcaspb.CaptureTreeRequest{Path: []string{dir + "/tree"}})
	if err != nil || ct.Responses[0].GetStatus().GetCode() != 0 {
		t.Fatalf("CaptureTree: %v %v", ct, err)
	}
	want := []digest.Digest{digest.OfBytes([]byte("a leaf"))}
	for _, p := range []*repb.Digest{ct.Responses[0].TreeDigest, ct.Responses[0].RootDirectoryDigest} {
		d, _ := digest.FromProto(p)
		want = append(want, d)
	}
	if missing, err := up.store.FindMissing(ctx(t), want); err != nil || len(missing) != 0 {
		t.Fatalf("the captured tree is not on the storage-service: missing %v %v", missing, err)
	}
	if _, err := rapb.NewFetchClient(e.conn).FetchBlob(ctx(t), &rapb.FetchBlobRequest{}); codeOf(err) != codes.InvalidArgument {
		t.Fatalf("Remote Asset start-up probe: %v, want INVALID_ARGUMENT", err)
	}
}

func TestStorageServiceDown(t *testing.T) {
	// A storage-service nobody answers on: fetches are listed failures
	// (not misses) and a capture's path fails UNAVAILABLE naming it.
	url := downURL(t)
	e := newStorageEnv(t, url)
	absent := digest.OfBytes([]byte("absent")).Proto()
	got := fetchOrUpload(t, e, "", false, absent)
	if !slices.Equal(got, []blobStatus{{absent.Hash, codes.Unavailable}}) {
		t.Fatalf("FetchMissingBlobs failures %v, want UNAVAILABLE", got)
	}
	p := writeFile(t, t.TempDir(), "f", "not uploadable", 0o644)
	resp, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{Path: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Responses[0].GetStatus(); codes.Code(st.GetCode()) != codes.Unavailable || !strings.Contains(st.GetMessage(), "storage-service "+url) {
		t.Fatalf("CaptureFiles with the storage-service down: %v, want UNAVAILABLE naming it", st)
	}
}
