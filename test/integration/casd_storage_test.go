package integration_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rapb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/testutil"
)

// storageFlags are the --cas-* flags BuildStream passes for `cache:
// storage-service` at url, with fast-failing connection settings.
func storageFlags(url string, more ...string) []string {
	return append([]string{"--cas-remote=" + url, "--cas-retry-limit=1", "--cas-retry-delay=10", "--cas-request-timeout=5"}, more...)
}

// captureFile writes data to a file in p's cache tmp directory (where
// BuildStream writes what it captures) and captures it on instance "".
func (p *casdProc) captureFile(t *testing.T, ctx context.Context, data string) (*repb.Digest, *grpcstatus.Status) {
	t.Helper()
	return p.captureFileReq(t, ctx, data, false)
}

// captureFileReq is captureFile with BuildStream's skip_upload.
func (p *casdProc) captureFileReq(t *testing.T, ctx context.Context, data string, skipUpload bool) (*repb.Digest, *grpcstatus.Status) {
	t.Helper()
	dir := filepath.Join(p.cacheDir, "tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "capture-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustWrite(t, f.Name(), data, 0o644)
	resp, err := p.local.CaptureFiles(ctx, &localcaspb.CaptureFilesRequest{Path: []string{f.Name()}, SkipUpload: skipUpload})
	if err != nil || len(resp.GetResponses()) != 1 {
		t.Fatalf("CaptureFiles: %v %v", resp, err)
	}
	r := resp.GetResponses()[0]
	return r.GetDigest(), grpcstatus.FromProto(r.GetStatus())
}

func TestCasdStorageService(t *testing.T) {
	// BuildStream's `cache: storage-service`: casd started with
	// --cas-remote is a proxy in front of that CAS. A blob only the remote
	// has is readable through FetchMissingBlobs and the REAPI CAS of
	// instance "" and lands in the cache directory; what is captured or
	// uploaded is on the remote afterwards; UploadTree is served.
	tok := startTokenUpstream(t)
	mt := startMTLSUpstream(t)
	plain := startPlainUpstream(t)
	for _, tc := range []struct {
		name  string
		up    *upstream
		flags []string
	}{
		{"plain TCP", plain, storageFlags(plain.url)},
		{"access token file", tok, storageFlags(tok.url, "--cas-access-token="+filepath.Join(tok.l.base, "token"), "--cas-token-reload-interval=1")},
		{"mTLS from certificate files", mt.upstream, storageFlags(mt.url, "--cas-server-cert="+mt.caFile, "--cas-client-cert="+mt.clientCert, "--cas-client-key="+mt.clientKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fetched, read := randomBlob(3000), randomBlob(2<<20)
			if err := instanceWrite(callCtx(t), tc.up.conn(t), "", fetched, read); err != nil {
				t.Fatal(err)
			}
			cacheDir := filepath.Join(shortTempDir(t), "cache")
			p := startCasdArgs(t, casdBin(t), cacheDir, newLayout(t).env, tc.flags)

			if f := p.fetchMissing(t, callCtx(t), "", fetched.d); len(f) != 0 {
				t.Fatalf("FetchMissingBlobs failures %v, want none:\n%s", f, p.logs.String())
			}
			if string(mustRead(t, objectFile(cacheDir, fetched.d))) != string(fetched.data) {
				t.Fatal("the fetched blob is not in the cache directory")
			}
			got, err := instanceRead(callCtx(t), p.conn, "", read.d)
			if err != nil || string(got) != string(read.data) {
				t.Fatalf("reading a remote-only blob through the casd's CAS: %d bytes, %v", len(got), err)
			}
			if len(mustRead(t, objectFile(cacheDir, read.d))) != len(read.data) {
				t.Fatal("the blob read through the CAS is not in the cache directory")
			}

			captured, st := p.captureFile(t, callCtx(t), "captured for the storage-service "+tc.name)
			if st.Code() != codes.OK {
				t.Fatalf("CaptureFiles: %v\n%s", st, p.logs.String())
			}
			if !tc.up.has(t, captured) {
				t.Fatal("the captured blob is not on the storage-service")
			}
			kept, st := p.captureFileReq(t, callCtx(t), "captured with skip_upload "+tc.name, true)
			if st.Code() != codes.OK || tc.up.has(t, kept) {
				t.Fatalf("CaptureFiles with skip_upload: %v, on the storage-service: %v", st, tc.up.has(t, kept))
			}
			uploaded := randomBlob(4000)
			p.capture(t, uploaded) // a REAPI write: local only
			if f := p.uploadMissing(t, callCtx(t), "", uploaded.d); len(f) != 0 {
				t.Fatalf("UploadMissingBlobs failures %v, want none:\n%s", f, p.logs.String())
			}
			if !tc.up.has(t, uploaded.d) {
				t.Fatal("the uploaded blob is not on the storage-service")
			}
			src := filepath.Join(p.cacheDir, "tmp", "tree")
			mustWrite(t, filepath.Join(src, "sub", "leaf"), "a captured tree's file "+tc.name, 0o644)
			ct, err := p.local.CaptureTree(callCtx(t), &localcaspb.CaptureTreeRequest{Path: []string{src}})
			if err != nil || grpcstatus.FromProto(ct.GetResponses()[0].GetStatus()).Code() != codes.OK {
				t.Fatalf("CaptureTree: %v %v", ct, err)
			}
			if r := ct.GetResponses()[0]; !tc.up.has(t, r.GetTreeDigest()) || !tc.up.has(t, r.GetRootDirectoryDigest()) || !tc.up.has(t, blobOf([]byte("a captured tree's file "+tc.name)).d) {
				t.Fatal("CaptureTree did not put the tree on the storage-service")
			}
			if _, err := rapb.NewFetchClient(p.conn).FetchBlob(callCtx(t), &rapb.FetchBlobRequest{}); grpcstatus.Code(err) != codes.InvalidArgument {
				t.Fatalf("BuildStream's start-up Remote Asset probe on instance \"\": %v, want INVALID_ARGUMENT", err)
			}
			file := randomBlob(500)
			dir := dirBlob(t, "f", file)
			p.capture(t, file, dir)
			if _, err := p.local.UploadTree(callCtx(t), &localcaspb.UploadTreeRequest{RootDigest: dir.d}); err != nil {
				t.Fatalf("UploadTree: %v", err)
			}
			if !tc.up.has(t, dir.d) || !tc.up.has(t, file.d) {
				t.Fatal("UploadTree did not put the tree on the storage-service")
			}
		})
	}
}

func TestCasdStorageServiceDown(t *testing.T) {
	// A storage-service that is down: each fetch is a listed failure that
	// names it, a capture's path fails UNAVAILABLE, all in bounded time.
	down := downAddr(t)
	p := startCasdArgs(t, casdBin(t), filepath.Join(shortTempDir(t), "cache"), newLayout(t).env, storageFlags(down))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := randomBlob(100)
	f := p.fetchMissing(t, ctx, "", a.d)
	if f.code(a.d) == codes.OK || f.code(a.d) == codes.NotFound {
		t.Fatalf("FetchMissingBlobs from a down storage-service: %v, want a failure that is not a miss", f)
	}
	if msg := f[a.d.GetHash()].Message(); !strings.Contains(msg, "storage-service "+down) {
		t.Errorf("failure %q does not name the storage-service", msg)
	}
	if _, st := p.captureFile(t, ctx, "not uploadable"); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "storage-service "+down) {
		t.Fatalf("CaptureFiles with a down storage-service: %v, want UNAVAILABLE naming it", st)
	}
}

func TestCasdStorageServiceThroughCastdDaemon(t *testing.T) {
	// With the user's castd daemon running, the storage-service traffic
	// goes to the daemon like every other remote instance: reads through
	// its pull order (--cas-remote, down here, is only a hint) and captures
	// through its write-back to its push-enabled remote.
	up := startPlainUpstream(t)
	only := randomBlob(3000)
	if err := instanceWrite(callCtx(t), up.conn(t), "", only); err != nil {
		t.Fatal(err)
	}
	l := newLayout(t)
	ws, _, _ := startWorkstation(t, l, "artifacts:\n  servers:\n  - "+up.serverYAML("all", true)+"\n")
	cacheDir := filepath.Join(shortTempDir(t), "cache")
	p := startCasdArgs(t, casdBin(t), cacheDir, append(l.env, "CASTD_SOCKET="+ws.socket), storageFlags(downAddr(t)))
	if f := p.fetchMissing(t, callCtx(t), "", only.d); len(f) != 0 {
		t.Fatalf("FetchMissingBlobs failures %v, want none:\n%s", f, p.logs.String())
	}
	if string(mustRead(t, objectFile(cacheDir, only.d))) != string(only.data) {
		t.Fatal("the blob read through the daemon is not in the cache directory")
	}
	captured, st := p.captureFile(t, callCtx(t), "captured through the daemon")
	if st.Code() != codes.OK {
		t.Fatalf("CaptureFiles: %v\n%s", st, p.logs.String())
	}
	testutil.EventuallyWithin(t, time.Minute, "the write-back push of the captured blob to the user's remote", func() bool { return up.has(t, captured) })
	if !strings.Contains(p.logs.String(), "storage-service traffic goes through the castd daemon") {
		t.Errorf("the casd log does not say the storage-service goes through castd:\n%s", p.logs.String())
	}
}
