package casd_test

import (
	"testing"

	rapb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
)

// remoteInstance registers a remote as BuildStream does at start-up and
// returns the instance name it is given.
func remoteInstance(t *testing.T, e *env) string {
	t.Helper()
	resp, err := e.local.GetInstanceNameForRemotes(ctx(t), &localcaspb.GetInstanceNameForRemotesRequest{
		ContentAddressableStorage: &localcaspb.Remote{Url: "https://cache.example.com:11001", InstanceName: "main"},
		RemoteAsset:               &localcaspb.Remote{Url: "https://cache.example.com:11001", InstanceName: "main"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.InstanceName == "" {
		t.Fatal("empty instance name")
	}
	return resp.InstanceName
}

func TestFetchAndUploadMissingBlobsListOnlyFailures(t *testing.T) {
	// BuildStream reads a `data` field from every entry it gets back, so an
	// entry for a blob that succeeded crashes it.
	e := newEnv(t)
	present := testutil.Put(t, e.store, []byte("present")).Proto()
	absent := digest.OfBytes([]byte("absent")).Proto()
	remote := remoteInstance(t, e)
	for _, tc := range []struct {
		name, instance string
		upload         bool
		wantFailed     []*repb.Digest
	}{
		{"fetch, local instance", "", false, []*repb.Digest{absent}},
		{"fetch, remote instance (answered from the local cache)", remote, false, []*repb.Digest{absent}},
		{"upload, local instance: nothing to upload to", "", true, []*repb.Digest{absent}},
		{"upload, remote instance: castd cannot reach it yet", remote, true, []*repb.Digest{absent, present}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*repb.Digest
			var codesGot []codes.Code
			if tc.upload {
				resp, err := e.local.UploadMissingBlobs(ctx(t), &localcaspb.UploadMissingBlobsRequest{InstanceName: tc.instance, BlobDigests: []*repb.Digest{present, absent}})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range resp.Responses {
					got, codesGot = append(got, r.Digest), append(codesGot, codes.Code(r.Status.GetCode()))
				}
			} else {
				resp, err := e.local.FetchMissingBlobs(ctx(t), &localcaspb.FetchMissingBlobsRequest{InstanceName: tc.instance, BlobDigests: []*repb.Digest{present, absent}})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range resp.Responses {
					got, codesGot = append(got, r.Digest), append(codesGot, codes.Code(r.Status.GetCode()))
				}
			}
			if len(got) != len(tc.wantFailed) {
				t.Fatalf("failed entries %v, want %v", got, tc.wantFailed)
			}
			for i := range got {
				if got[i].Hash != tc.wantFailed[i].Hash || codesGot[i] == codes.OK {
					t.Fatalf("entry %d: %v %v, want a failure for %v", i, got[i], codesGot[i], tc.wantFailed[i])
				}
			}
			if codesGot[0] != codes.NotFound {
				t.Fatalf("absent blob: %v, want NOT_FOUND", codesGot[0])
			}
		})
	}
	t.Run("unknown instance", func(t *testing.T) {
		_, err := e.local.FetchMissingBlobs(ctx(t), &localcaspb.FetchMissingBlobsRequest{InstanceName: "never-given", BlobDigests: []*repb.Digest{present}})
		if codeOf(err) != codes.InvalidArgument {
			t.Fatalf("%v, want INVALID_ARGUMENT", err)
		}
	})
}

func TestFetchTree(t *testing.T) {
	// Instance "" only checks that the tree is complete in the local cache.
	e := newEnv(t)
	file := testutil.Put(t, e.store, []byte("file"))
	sub := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: file.Proto()}}})
	root := putDir(t, e, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "s", Digest: sub.Proto()}}})
	lostFile := digest.OfBytes([]byte("lost"))
	lostSub := digest.OfBytes([]byte("not a stored directory"))
	noFile := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: lostFile.Proto()}}})
	noSub := putDir(t, e, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "s", Digest: lostSub.Proto()}}})
	remote := remoteInstance(t, e)
	for _, tc := range []struct {
		name     string
		instance string
		root     digest.Digest
		files    bool
		want     codes.Code
	}{
		{"complete", "", root, true, codes.OK},
		{"complete, remote instance", remote, root, true, codes.OK},
		{"directory missing", "", noSub, false, codes.NotFound},
		{"root missing", remote, lostSub, false, codes.NotFound},
		{"file missing, files not asked for", "", noFile, false, codes.OK},
		{"file missing", "", noFile, true, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.local.FetchTree(ctx(t), &localcaspb.FetchTreeRequest{InstanceName: tc.instance, RootDigest: tc.root.Proto(), FetchFileBlobs: tc.files})
			if codeOf(err) != tc.want {
				t.Fatalf("FetchTree: %v, want %v", err, tc.want)
			}
		})
	}
}

// putDir stores a Directory and returns its digest.
func putDir(t *testing.T, e *env, d *repb.Directory) digest.Digest {
	t.Helper()
	dg, b, err := digest.OfMessage(d)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Put(t, e.store, b)
	return dg
}

func TestStartUpProbesAndRemoteInstances(t *testing.T) {
	// BuildStream probes Remote Asset without URIs and treats
	// INVALID_ARGUMENT as healthy; with URIs a fetch is a miss, which
	// makes it build instead.
	e := newEnv(t)
	remote := remoteInstance(t, e)
	again := remoteInstance(t, e)
	if again != remote {
		t.Fatalf("the same remotes got two names: %q, %q", remote, again)
	}
	fetch, push := rapb.NewFetchClient(e.conn), rapb.NewPushClient(e.conn)
	if _, err := fetch.FetchBlob(ctx(t), &rapb.FetchBlobRequest{InstanceName: remote}); codeOf(err) != codes.InvalidArgument {
		t.Fatalf("FetchBlob probe: %v, want INVALID_ARGUMENT", err)
	}
	if _, err := push.PushBlob(ctx(t), &rapb.PushBlobRequest{InstanceName: remote}); codeOf(err) != codes.InvalidArgument {
		t.Fatalf("PushBlob probe: %v, want INVALID_ARGUMENT", err)
	}
	uri := []string{"urn:fdc:buildstream.build:2020:artifact:p/e/key"}
	if _, err := fetch.FetchBlob(ctx(t), &rapb.FetchBlobRequest{InstanceName: remote, Uris: uri}); codeOf(err) != codes.NotFound {
		t.Fatalf("FetchBlob: %v, want NOT_FOUND", err)
	}
	if _, err := push.PushBlob(ctx(t), &rapb.PushBlobRequest{InstanceName: remote, Uris: uri}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("PushBlob: %v, want FAILED_PRECONDITION (remote not reachable yet)", err)
	}
	if _, err := e.local.UploadTree(ctx(t), &localcaspb.UploadTreeRequest{}); codeOf(err) != codes.Unimplemented {
		t.Fatalf("UploadTree: %v, want UNIMPLEMENTED (BuildStream then walks the tree)", err)
	}
}

func TestREAPIAndDiskUsageOverTheCacheDirectory(t *testing.T) {
	// castd's REAPI handlers serve the same blob files; GetLocalDiskUsage
	// counts them.
	e := newEnv(t)
	data := []byte("batch blob")
	d := digest.OfBytes(data).Proto()
	if _, err := e.cas.BatchUpdateBlobs(ctx(t), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d, Data: data}}}); err != nil {
		t.Fatal(err)
	}
	if string(e.readBlob(t, d)) != string(data) {
		t.Fatal("BatchUpdateBlobs did not write the blob file")
	}
	fm, err := e.cas.FindMissingBlobs(ctx(t), &repb.FindMissingBlobsRequest{BlobDigests: []*repb.Digest{d, digest.OfBytes([]byte("no")).Proto()}})
	if err != nil || len(fm.MissingBlobDigests) != 1 {
		t.Fatalf("FindMissingBlobs: %v %v", fm, err)
	}
	root := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: d}}})
	gt, err := e.cas.GetTree(ctx(t), &repb.GetTreeRequest{RootDigest: root.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	if page, err := gt.Recv(); err != nil || len(page.Directories) != 1 || page.Directories[0].Files[0].Name != "f" {
		t.Fatalf("GetTree: %v %v", page, err)
	}
	rd, err := bspb.NewByteStreamClient(e.conn).Read(ctx(t), &bspb.ReadRequest{ResourceName: digest.ReadResourceName("", digest.OfBytes(data))})
	if err != nil {
		t.Fatal(err)
	}
	if chunk, err := rd.Recv(); err != nil || string(chunk.Data) != string(data) {
		t.Fatalf("ByteStream Read: %v %v", chunk, err)
	}
	usage, err := e.local.GetLocalDiskUsage(ctx(t), &localcaspb.GetLocalDiskUsageRequest{})
	if err != nil || usage.SizeBytes < int64(len(data)) {
		t.Fatalf("GetLocalDiskUsage: %v %v, want at least %d bytes", usage, err, len(data))
	}
}
