package casd_test

import (
	"bytes"
	"net"
	"slices"
	"testing"
	"time"

	rapb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
)

// remoteInstance registers url as CAS and Remote Asset remote as
// BuildStream does at start-up and returns the instance name it is given.
// One attempt per call, so a remote that is down fails at once.
func remoteInstance(t *testing.T, e *env, url string, readOnly bool) string {
	t.Helper()
	rm := &localcaspb.Remote{Url: url, RetryLimit: 0, RetryDelay: durationpb.New(10 * time.Millisecond), RequestTimeout: durationpb.New(5 * time.Second), ReadOnly: readOnly}
	resp, err := e.local.GetInstanceNameForRemotes(ctx(t), &localcaspb.GetInstanceNameForRemotesRequest{ContentAddressableStorage: rm, RemoteAsset: rm})
	if err != nil {
		t.Fatal(err)
	}
	if resp.InstanceName == "" {
		t.Fatal("empty instance name")
	}
	return resp.InstanceName
}

// newUpstream is a second Daemon over its own cache directory, served on
// loopback TCP as a remote for e's remote instances; it returns its url.
func newUpstream(t *testing.T) (*env, string) {
	t.Helper()
	u := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := u.daemon.GRPCServer()
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return u, "grpc://" + l.Addr().String()
}

// downURL is a loopback address nothing listens on.
func downURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "grpc://" + addr
}

// blobStatus is one failed entry of a Fetch/UploadMissingBlobs answer.
type blobStatus struct {
	hash string
	code codes.Code
}

// fetchOrUpload calls FetchMissingBlobs (or UploadMissingBlobs) and
// returns the failed entries.
func fetchOrUpload(t *testing.T, e *env, instance string, upload bool, ds ...*repb.Digest) []blobStatus {
	t.Helper()
	var out []blobStatus
	if upload {
		resp, err := e.local.UploadMissingBlobs(ctx(t), &localcaspb.UploadMissingBlobsRequest{InstanceName: instance, BlobDigests: ds})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Responses {
			out = append(out, blobStatus{r.Digest.GetHash(), codes.Code(r.Status.GetCode())})
		}
		return out
	}
	resp, err := e.local.FetchMissingBlobs(ctx(t), &localcaspb.FetchMissingBlobsRequest{InstanceName: instance, BlobDigests: ds})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Responses {
		out = append(out, blobStatus{r.Digest.GetHash(), codes.Code(r.Status.GetCode())})
	}
	return out
}

func TestFetchAndUploadMissingBlobsListOnlyFailures(t *testing.T) {
	// BuildStream reads a `data` field from every entry it gets back, so an
	// entry for a blob that succeeded crashes it; a remote instance fetches
	// into the cache directory and uploads to the remote BuildStream named.
	e := newEnv(t)
	up, url := newUpstream(t)
	present := testutil.Put(t, e.store, []byte("present")).Proto()
	absent := digest.OfBytes([]byte("absent")).Proto()
	remote := remoteInstance(t, e, url, false)
	readOnly := remoteInstance(t, e, url, true)
	down := remoteInstance(t, e, downURL(t), false)
	for _, tc := range []struct {
		name, instance string
		upload         bool
		want           []blobStatus
	}{
		{"fetch, local instance", "", false, []blobStatus{{absent.Hash, codes.NotFound}}},
		{"fetch, remote instance lacking the blob too", remote, false, []blobStatus{{absent.Hash, codes.NotFound}}},
		{"fetch, remote down", down, false, []blobStatus{{absent.Hash, codes.Unavailable}}},
		{"upload, local instance: nothing to upload to", "", true, []blobStatus{{absent.Hash, codes.NotFound}}},
		{"upload, read-only remote", readOnly, true, []blobStatus{{absent.Hash, codes.NotFound}, {present.Hash, codes.FailedPrecondition}}},
		{"upload, remote down", down, true, []blobStatus{{absent.Hash, codes.NotFound}, {present.Hash, codes.Unavailable}}},
		{"upload, remote instance", remote, true, []blobStatus{{absent.Hash, codes.NotFound}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fetchOrUpload(t, e, tc.instance, tc.upload, present, absent)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("failed entries %v, want %v", got, tc.want)
			}
		})
	}
	if string(up.readBlob(t, present)) != "present" {
		t.Fatal("the upload did not reach the remote")
	}
	t.Run("fetch, remote instance", func(t *testing.T) {
		// A blob only the remote has lands in the cache directory.
		only := testutil.Put(t, up.store, []byte("only upstream")).Proto()
		large := testutil.Put(t, up.store, bytes.Repeat([]byte("L"), 3<<20)).Proto()
		if got := fetchOrUpload(t, e, remote, false, only, large); len(got) != 0 {
			t.Fatalf("failed entries %v, want none", got)
		}
		if string(e.readBlob(t, only)) != "only upstream" || len(e.readBlob(t, large)) != 3<<20 {
			t.Fatal("fetched blobs are not in the cache directory")
		}
	})
	t.Run("unknown instance", func(t *testing.T) {
		_, err := e.local.FetchMissingBlobs(ctx(t), &localcaspb.FetchMissingBlobsRequest{InstanceName: "never-given", BlobDigests: []*repb.Digest{present}})
		if codeOf(err) != codes.InvalidArgument {
			t.Fatalf("%v, want INVALID_ARGUMENT", err)
		}
	})
}

func TestFetchTree(t *testing.T) {
	// Instance "" only checks that the tree is complete in the local cache;
	// a remote instance first pulls it from the remote.
	e := newEnv(t)
	up, url := newUpstream(t)
	file := testutil.Put(t, e.store, []byte("file"))
	sub := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: file.Proto()}}})
	root := putDir(t, e, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "s", Digest: sub.Proto()}}})
	lostFile := digest.OfBytes([]byte("lost"))
	lostSub := digest.OfBytes([]byte("not a stored directory"))
	noFile := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: lostFile.Proto()}}})
	noSub := putDir(t, e, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "s", Digest: lostSub.Proto()}}})
	upFile := testutil.Put(t, up.store, []byte("upstream file"))
	upSub := putDir(t, up, &repb.Directory{Files: []*repb.FileNode{{Name: "g", Digest: upFile.Proto()}}})
	upRoot := putDir(t, up, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "t", Digest: upSub.Proto()}}})
	remote := remoteInstance(t, e, url, true)
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
		{"root missing here and on the remote", remote, lostSub, false, codes.NotFound},
		{"file missing, files not asked for", "", noFile, false, codes.OK},
		{"file missing", "", noFile, true, codes.NotFound},
		{"only the remote has it: not pulled for the local instance", "", upRoot, true, codes.NotFound},
		{"only the remote has it: pulled", remote, upRoot, true, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.local.FetchTree(ctx(t), &localcaspb.FetchTreeRequest{InstanceName: tc.instance, RootDigest: tc.root.Proto(), FetchFileBlobs: tc.files})
			if codeOf(err) != tc.want {
				t.Fatalf("FetchTree: %v, want %v", err, tc.want)
			}
		})
	}
	if string(e.readBlob(t, upFile.Proto())) != "upstream file" {
		t.Fatal("the pulled tree's file is not in the cache directory")
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
	// INVALID_ARGUMENT as healthy; the remote answers the probe (a remote
	// that is down fails it); with URIs the remote answers (here
	// another casd, which keeps no asset index: a miss, and a refused
	// push).
	e := newEnv(t)
	_, url := newUpstream(t)
	remote := remoteInstance(t, e, url, false)
	again := remoteInstance(t, e, url, false)
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
	down := remoteInstance(t, e, downURL(t), false)
	if _, err := fetch.FetchBlob(ctx(t), &rapb.FetchBlobRequest{InstanceName: down}); codeOf(err) != codes.Unavailable {
		t.Fatalf("FetchBlob probe of a remote that is down: %v, want UNAVAILABLE (the probe goes to the remote)", err)
	}
	uri := []string{"urn:fdc:buildstream.build:2020:artifact:p/e/key"}
	if _, err := fetch.FetchBlob(ctx(t), &rapb.FetchBlobRequest{InstanceName: remote, Uris: uri}); codeOf(err) != codes.NotFound {
		t.Fatalf("FetchBlob: %v, want NOT_FOUND", err)
	}
	if _, err := push.PushBlob(ctx(t), &rapb.PushBlobRequest{InstanceName: remote, Uris: uri}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("PushBlob: %v, want the remote's FAILED_PRECONDITION", err)
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

func TestUploadTreeAndFindMissingOfARemoteInstance(t *testing.T) {
	// BuildStream asks the remote instance's FindMissingBlobs what the
	// remote lacks, then uploads; UploadTree sends a whole local tree.
	e := newEnv(t)
	up, url := newUpstream(t)
	remote := remoteInstance(t, e, url, false)
	file := testutil.Put(t, e.store, []byte("tree file"))
	sub := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: file.Proto()}}})
	root := putDir(t, e, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "s", Digest: sub.Proto()}}})
	fm, err := e.cas.FindMissingBlobs(ctx(t), &repb.FindMissingBlobsRequest{InstanceName: remote, BlobDigests: []*repb.Digest{file.Proto()}})
	if err != nil || len(fm.MissingBlobDigests) != 1 {
		t.Fatalf("FindMissingBlobs on the remote instance: %v %v, want the local-only blob missing", fm, err)
	}
	if _, err := e.local.UploadTree(ctx(t), &localcaspb.UploadTreeRequest{InstanceName: remote, RootDigest: root.Proto()}); err != nil {
		t.Fatalf("UploadTree: %v", err)
	}
	for _, d := range []digest.Digest{root, sub, file} {
		up.readBlob(t, d.Proto())
	}
	readOnly := remoteInstance(t, e, url, true)
	other := putDir(t, e, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "t", Digest: sub.Proto()}}})
	if _, err := e.local.UploadTree(ctx(t), &localcaspb.UploadTreeRequest{InstanceName: readOnly, RootDigest: other.Proto()}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("UploadTree to a read-only remote: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := e.local.UploadTree(ctx(t), &localcaspb.UploadTreeRequest{InstanceName: remote, RootDigest: digest.OfBytes([]byte("no tree")).Proto()}); codeOf(err) != codes.NotFound {
		t.Fatalf("UploadTree of a tree not in the cache: %v, want NOT_FOUND", err)
	}
}
