package integration_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	rapb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/testutil"
)

// bstRemote is a Remote as BuildStream sends it in
// GetInstanceNameForRemotes, with fast-failing connection settings.
func bstRemote(url string, readOnly bool) *localcaspb.Remote {
	return &localcaspb.Remote{Url: url, ReadOnly: readOnly, RetryLimit: 1,
		RetryDelay: durationpb.New(10 * time.Millisecond), RequestTimeout: durationpb.New(5 * time.Second)}
}

// remotesInstance asks p for the instance name of cas and asset (either
// may be nil), as BuildStream does once per remote and role.
func (p *casdProc) remotesInstance(t *testing.T, cas, asset *localcaspb.Remote) string {
	t.Helper()
	resp, err := p.local.GetInstanceNameForRemotes(callCtx(t), &localcaspb.GetInstanceNameForRemotesRequest{ContentAddressableStorage: cas, RemoteAsset: asset})
	if err != nil {
		t.Fatalf("GetInstanceNameForRemotes: %v", err)
	}
	return resp.GetInstanceName()
}

// blobFailures are the entries of a Fetch/UploadMissingBlobs answer
// (BuildStream's contract: failures only), by hash.
type blobFailures map[string]*grpcstatus.Status

// code is the code listed for d, OK when d is not listed.
func (f blobFailures) code(d *repb.Digest) codes.Code {
	if st, ok := f[d.GetHash()]; ok {
		return st.Code()
	}
	return codes.OK
}

func (p *casdProc) fetchMissing(t *testing.T, ctx context.Context, instance string, ds ...*repb.Digest) blobFailures {
	t.Helper()
	resp, err := p.local.FetchMissingBlobs(ctx, &localcaspb.FetchMissingBlobsRequest{InstanceName: instance, BlobDigests: ds})
	if err != nil {
		t.Fatalf("FetchMissingBlobs: %v", err)
	}
	out := blobFailures{}
	for _, r := range resp.GetResponses() {
		out[r.GetDigest().GetHash()] = grpcstatus.FromProto(r.GetStatus())
	}
	return out
}

func (p *casdProc) uploadMissing(t *testing.T, ctx context.Context, instance string, ds ...*repb.Digest) blobFailures {
	t.Helper()
	resp, err := p.local.UploadMissingBlobs(ctx, &localcaspb.UploadMissingBlobsRequest{InstanceName: instance, BlobDigests: ds})
	if err != nil {
		t.Fatalf("UploadMissingBlobs: %v", err)
	}
	out := blobFailures{}
	for _, r := range resp.GetResponses() {
		out[r.GetDigest().GetHash()] = grpcstatus.FromProto(r.GetStatus())
	}
	return out
}

// capture puts b into p's cache directory (instance "").
func (p *casdProc) capture(t *testing.T, bs ...blob) {
	t.Helper()
	if err := instanceWrite(callCtx(t), p.conn, "", bs...); err != nil {
		t.Fatalf("storing in the casd cache: %v", err)
	}
}

// dirBlob is the Directory message with one file f of b.
func dirBlob(t *testing.T, name string, b blob) blob {
	t.Helper()
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(&repb.Directory{Files: []*repb.FileNode{{Name: name, Digest: b.d}}})
	if err != nil {
		t.Fatal(err)
	}
	return blobOf(data)
}

// hasAsset reports whether the upstream's own asset index resolves uri.
func (u *upstream) hasAsset(t *testing.T, uri string) bool {
	t.Helper()
	_, err := rapb.NewFetchClient(u.conn(t)).FetchBlob(ctxFor(t, 10*time.Second), &rapb.FetchBlobRequest{Uris: []string{uri}})
	if err != nil && grpcstatus.Code(err) != codes.NotFound {
		t.Fatalf("FetchBlob on upstream %s: %v", u.addr, err)
	}
	return err == nil
}

// downAddr is a loopback URL nothing listens on.
func downAddr(t *testing.T) string { return "grpc://" + freePort(t) }

func TestCasdPullsThroughCastdDaemon(t *testing.T) {
	// With the user's castd daemon running (found as bst finds it: its
	// castd.yaml names the socket), the per-command casd pulls through it:
	// the daemon's pull order reaches the upstream, BuildStream's own URL
	// (down here) is only a hint, and the blobs land in the cache dir.
	up := startPlainUpstream(t)
	small, large := randomBlob(5000), randomBlob(2<<20)
	file := randomBlob(100)
	dir := dirBlob(t, "f", file)
	for _, b := range []blob{small, large, file, dir} {
		if err := instanceWrite(callCtx(t), up.conn(t), "", b); err != nil {
			t.Fatal(err)
		}
	}
	uri := "urn:fdc:buildstream.build:2020:artifact:hello/hello/pulled"
	if _, err := rapb.NewPushClient(up.conn(t)).PushBlob(callCtx(t), &rapb.PushBlobRequest{Uris: []string{uri}, BlobDigest: small.d}); err != nil {
		t.Fatalf("PushBlob on the upstream: %v", err)
	}
	l := newLayout(t)
	cfg := l.configYAML("artifacts:\n  servers:\n  - " + up.serverYAML("all", false) + "\n")
	startWorkstation(t, l, "artifacts:\n  servers:\n  - "+up.serverYAML("all", false)+"\n")
	mustWrite(t, filepath.Join(l.base, "xconfig", "castd", "castd.yaml"), cfg, 0o600)
	cacheDir := filepath.Join(shortTempDir(t), "cache")
	p := startCasdEnv(t, casdBin(t), cacheDir, l.env)

	hint := bstRemote(downAddr(t), false)
	inst := p.remotesInstance(t, hint, hint)
	if f := p.fetchMissing(t, callCtx(t), inst, small.d, large.d); len(f) != 0 {
		t.Fatalf("FetchMissingBlobs failures %v, want none:\n%s", f, p.logs.String())
	}
	if string(mustRead(t, objectFile(cacheDir, small.d))) != string(small.data) || len(mustRead(t, objectFile(cacheDir, large.d))) != len(large.data) {
		t.Fatal("fetched blobs are not complete files in the cache directory")
	}
	if _, err := p.local.FetchTree(callCtx(t), &localcaspb.FetchTreeRequest{InstanceName: inst, RootDigest: dir.d, FetchFileBlobs: true}); err != nil {
		t.Fatalf("FetchTree: %v", err)
	}
	if string(mustRead(t, objectFile(cacheDir, file.d))) != string(file.data) {
		t.Fatal("the tree's file is not in the cache directory")
	}
	got, err := rapb.NewFetchClient(p.conn).FetchBlob(callCtx(t), &rapb.FetchBlobRequest{InstanceName: inst, Uris: []string{uri}})
	if err != nil || got.GetBlobDigest().GetHash() != small.d.GetHash() {
		t.Fatalf("FetchBlob of the upstream's artifact ref through castd: %v %v", got, err)
	}
	if _, ok := p.logs.find(regexp.MustCompile(`go through the castd daemon`)); !ok {
		t.Errorf("the casd log does not say remote work goes through castd:\n%s", p.logs.String())
	}
}

func TestCasdPushFollowsCastdPolicy(t *testing.T) {
	// BuildStream asks to push to its own remote; the castd daemon's
	// write-back pushes only to the user's push-enabled remote, never to
	// BuildStream's, and the casd says once that castd's policy wins.
	user, named := startPlainUpstream(t), startPlainUpstream(t)
	for _, tc := range []struct {
		name  string
		push  bool
		bstTo *upstream // the remote BuildStream asks to push to
		notes int       // policy notes expected in the casd log
	}{
		{"user remote push true", true, named, 1},
		{"user remote push false", false, named, 1},
		{"BuildStream names the user's push remote: no note", true, user, 0},
	} {
		push := tc.push
		t.Run(tc.name, func(t *testing.T) {
			l := newLayout(t)
			ws, _, ctl := startWorkstation(t, l, "artifacts:\n  servers:\n  - "+user.serverYAML("all", push)+"\n")
			p := startCasdEnv(t, casdBin(t), filepath.Join(shortTempDir(t), "cache"), append(l.env, "CASTD_SOCKET="+ws.socket))
			wanted := bstRemote(tc.bstTo.url, false)
			inst := p.remotesInstance(t, wanted, wanted)
			p.remotesInstance(t, wanted, nil) // the same remote in another role
			b := randomBlob(4000)
			p.capture(t, b)
			if f := p.uploadMissing(t, callCtx(t), inst, b.d); len(f) != 0 {
				t.Fatalf("UploadMissingBlobs failures %v, want none:\n%s", f, p.logs.String())
			}
			uri := "urn:fdc:buildstream.build:2020:artifact:hello/hello/" + b.d.GetHash()
			if _, err := rapb.NewPushClient(p.conn).PushBlob(callCtx(t), &rapb.PushBlobRequest{InstanceName: inst, Uris: []string{uri}, BlobDigest: b.d}); err != nil {
				t.Fatalf("PushBlob through the casd: %v", err)
			}
			if push {
				testutil.EventuallyWithin(t, time.Minute, "the write-back push of blob and ref to the user's remote", func() bool { return user.has(t, b.d) && user.hasAsset(t, uri) })
			} else {
				testutil.EventuallyWithin(t, time.Minute, "an empty write-back queue", func() bool { return ctlStatus(t, ctl).GetQueue().GetDepth() == 0 })
				if user.has(t, b.d) || user.hasAsset(t, uri) {
					t.Error("pushed to a user remote with push: false")
				}
			}
			if tc.bstTo == named && (named.has(t, b.d) || named.hasAsset(t, uri)) {
				t.Error("pushed to BuildStream's remote, which castd's policy does not push to")
			}
			if n := strings.Count(p.logs.String(), "castd's policy wins"); n != tc.notes {
				t.Errorf("the policy note is logged %d times, want %d:\n%s", n, tc.notes, p.logs.String())
			}
		})
	}
}

func TestCasdDirectRemotesWithoutDaemon(t *testing.T) {
	// No castd daemon runs: the casd dials BuildStream's remotes itself
	// (token file; mTLS from certificate bytes), fetches into the cache
	// dir and uploads unless the remote is read-only.
	tok := startTokenUpstream(t)
	mt := startMTLSUpstream(t)
	certs := func(m *mtlsUpstream, readOnly bool) *localcaspb.Remote {
		r := bstRemote(m.url, readOnly)
		r.ServerCert, r.ClientCert, r.ClientKey = mustRead(t, m.caFile), mustRead(t, m.clientCert), mustRead(t, m.clientKey)
		return r
	}
	token := func(readOnly bool) *localcaspb.Remote {
		r := bstRemote(tok.url, readOnly)
		r.AccessTokenPath = filepath.Join(tok.l.base, "token")
		return r
	}
	for _, tc := range []struct {
		name               string
		up                 *upstream
		remote, readRemote *localcaspb.Remote
	}{
		{"access token", tok, token(false), token(true)},
		{"mTLS from certificate bytes", mt.upstream, certs(mt, false), certs(mt, true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			only := randomBlob(3000)
			if err := instanceWrite(callCtx(t), tc.up.conn(t), "", only); err != nil {
				t.Fatal(err)
			}
			cacheDir := filepath.Join(shortTempDir(t), "cache")
			tmp := shortTempDir(t) // where the casd writes the certificates it was given
			p := startCasdEnv(t, casdBin(t), cacheDir, append(newLayout(t).env, "TMPDIR="+tmp))
			inst := p.remotesInstance(t, tc.remote, nil)
			if f := p.fetchMissing(t, callCtx(t), inst, only.d); len(f) != 0 {
				t.Fatalf("FetchMissingBlobs failures %v, want none:\n%s", f, p.logs.String())
			}
			if string(mustRead(t, objectFile(cacheDir, only.d))) != string(only.data) {
				t.Fatal("the fetched blob is not in the cache directory")
			}
			mine, kept := randomBlob(2000), randomBlob(2100)
			p.capture(t, mine, kept)
			if f := p.uploadMissing(t, callCtx(t), inst, mine.d); len(f) != 0 {
				t.Fatalf("UploadMissingBlobs failures %v, want none:\n%s", f, p.logs.String())
			}
			if !tc.up.has(t, mine.d) {
				t.Fatal("the upload did not reach the remote")
			}
			ro := p.remotesInstance(t, tc.readRemote, nil)
			if f := p.uploadMissing(t, callCtx(t), ro, kept.d); f.code(kept.d) != codes.FailedPrecondition {
				t.Fatalf("upload to a read-only remote: %v, want FAILED_PRECONDITION", f)
			}
			if tc.up.has(t, kept.d) {
				t.Fatal("uploaded to a read-only remote")
			}
			p.stop(t, syscall.SIGTERM)
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("the casd left %d entries in its TMPDIR after exit (credentials must go)", len(left))
			}
		})
	}
}

func TestCasdRemoteDownListsFailures(t *testing.T) {
	// A remote that is down costs a listed failure per blob naming where
	// the casd fetched from, within a bounded time, with or without a
	// castd daemon in between; a direct upload fails UNAVAILABLE.
	down := newPlainUpstream(t) // never started
	l := newLayout(t)
	ws, _, _ := startWorkstation(t, l, "artifacts:\n  servers:\n  - "+down.serverYAML("all", true)+"\n")
	for _, tc := range []struct {
		name, via string
		env       []string
	}{
		{"direct", "fetching from remote " + down.url, newLayout(t).env},
		{"through the castd daemon", "fetching from castd daemon at " + ws.socket, append(l.env, "CASTD_SOCKET="+ws.socket)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startCasdEnv(t, casdBin(t), filepath.Join(shortTempDir(t), "cache"), tc.env)
			inst := p.remotesInstance(t, bstRemote(down.url, false), nil)
			a, b := randomBlob(100), randomBlob(200)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f := p.fetchMissing(t, ctx, inst, a.d, b.d)
			if len(f) != 2 || f.code(a.d) == codes.OK || f.code(b.d) == codes.OK {
				t.Fatalf("FetchMissingBlobs failures %v, want both blobs listed", f)
			}
			if msg := f[a.d.GetHash()].Message(); !strings.Contains(msg, tc.via) {
				t.Errorf("failure %q does not say it was %s", msg, tc.via)
			}
			if _, err := os.Stat(objectFile(p.cacheDir, a.d)); err == nil {
				t.Fatal("a blob nobody served is in the cache directory")
			}
			if tc.name == "direct" {
				p.capture(t, a)
				if f := p.uploadMissing(t, ctx, inst, a.d); f.code(a.d) != codes.Unavailable {
					t.Fatalf("UploadMissingBlobs to a down remote: %v, want UNAVAILABLE", f)
				}
			}
		})
	}
}
