package asset_test

import (
	"strings"
	"sync"
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
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// hooks records what the fan-out reports.
type hooks struct {
	mu   sync.Mutex
	hits []string // tier name + " " + URI
}

func (h *hooks) options() asset.FanoutOptions {
	return asset.FanoutOptions{
		OnRemoteHit: func(a asset.Asset, ref asset.Ref, tier asset.Tier) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.hits = append(h.hits, tier.Name+"/"+tier.Origin+" "+ref.URI)
		},
	}
}

func (h *hooks) snapshot() (hits []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.hits...)
}

// remoteTier dials n as an index remote and wraps it like the wiring does.
func remoteTier(t *testing.T, n *node, name, origin string, cas store.CAS) asset.Tier {
	t.Helper()
	r, err := grpcclient.Dial(testutil.Context(t), grpcclient.Config{URL: "grpc://" + n.addr, InstanceName: "remote-" + name, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return asset.Tier{Name: name, Origin: origin, Index: asset.NewCompletenessCheckingIndex(asset.NewRemoteIndex(r.Assets()), cas)}
}

func TestFanout(t *testing.T) {
	ctx := testutil.Context(t)
	broken := startNode(t, nodeConfig{fail: codes.Internal})
	dangling := startNode(t, nodeConfig{})
	project := startNode(t, nodeConfig{})
	wsCAS := store.NewMemory() // stands in for the fan-out CAS over the storage remotes
	content := []byte("artifact")
	d := putBlob(t, wsCAS, content)
	putBlob(t, project.cas, content)
	gone := digest.OfBytes([]byte("gone everywhere"))
	record := func(n *node, uri string, d digest.Digest) {
		if err := n.index.Record(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{uri}, Qualifiers: q("q", "1")}, asset.Ref{Digest: d}); err != nil {
			t.Fatal(err)
		}
	}
	record(project, "https://a.example/one", d)
	record(project, "https://a.example/two", d)
	record(dangling, "https://a.example/two", gone)

	h := &hooks{}
	local := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
	tiers := []asset.Tier{
		remoteTier(t, broken, "broken", "user", wsCAS),
		remoteTier(t, dangling, "dangling", "user", wsCAS),
		remoteTier(t, project, "project", "project", wsCAS),
	}
	ws := startNode(t, nodeConfig{cas: wsCAS, index: asset.NewFanout(asset.NewCompletenessCheckingIndex(local, wsCAS), tiers, h.options())})

	tests := []struct {
		name         string
		why          string
		uri          string
		want         codes.Code
		projectCalls int // FetchBlob calls the project remote has seen after the step
		brokenCalls  int
		hits         int
	}{
		{"broken remote skipped, project remote hit", "a failing remote must not fail the read; the next one serves", "https://a.example/one", codes.OK, 1, 1, 1},
		{"second fetch served locally", "a remote hit is recorded locally, so no remote is asked again", "https://a.example/one", codes.OK, 1, 1, 1},
		{"dangling reference skipped", "a tier whose content is gone everywhere is a miss of that tier", "https://a.example/two", codes.OK, 2, 2, 2},
		{"miss everywhere", "found nowhere is NOT_FOUND; castd does not download", "https://a.example/three", codes.NotFound, 3, 3, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			resp, err := ws.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{tc.uri}, Qualifiers: q("q", "1")})
			wantCode(t, err, tc.want)
			if tc.want == codes.OK && !proto.Equal(resp.GetBlobDigest(), d.Proto()) {
				t.Fatalf("digest %v, want %s", resp.GetBlobDigest(), d)
			}
			hits := h.snapshot()
			if project.callCount("FetchBlob") != tc.projectCalls || broken.callCount("FetchBlob") != tc.brokenCalls || len(hits) != tc.hits {
				t.Fatalf("project calls %d, broken calls %d, hits %v; want %d, %d, %d hits",
					project.callCount("FetchBlob"), broken.callCount("FetchBlob"), hits, tc.projectCalls, tc.brokenCalls, tc.hits)
			}
		})
	}
	t.Run("hooks name the tier", func(t *testing.T) {
		t.Log("re-caching needs to know which remote served, and its origin")
		hits := h.snapshot()
		if hits[0] != "project/project https://a.example/one" || hits[1] != "project/project https://a.example/two" {
			t.Fatalf("hits %v", hits)
		}
		if got := project.instancesSeen()[0]; got != "remote-project" {
			t.Fatalf("project remote saw instance %q, want its own remote-project", got)
		}
	})
	t.Run("push goes local only", func(t *testing.T) {
		t.Log("write-back is the queue's job; the push itself touches no remote")
		if _, err := ws.push.PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{"https://a.example/pushed"}, BlobDigest: d.Proto()}); err != nil {
			t.Fatal(err)
		}
		ref, err := local.Lookup(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{"https://a.example/pushed"}}, time.Time{})
		if err != nil || ref.Digest != d || project.callCount("PushBlob") != 0 {
			t.Fatalf("local holds %+v, %v; project pushes %d", ref, err, project.callCount("PushBlob"))
		}
	})
}

func TestRemoteIndexRecord(t *testing.T) {
	ctx := testutil.Context(t)
	remote := startNode(t, nodeConfig{})
	tr := putTree(t, remote.cas, "write-back", true)
	idx := remoteTier(t, remote, "push-remote", "user", remote.cas).Index
	a := asset.Asset{Kind: asset.Directory, URIs: []string{"https://a.example/src", "https://b.example/src"}, Qualifiers: q("vcs.commit", "abc")}
	if err := idx.Record(ctx, a, asset.Ref{Digest: tr.root}); err != nil {
		t.Fatal(err)
	}
	t.Run("pushed association is fetchable on the remote", func(t *testing.T) {
		t.Log("write-back through NewRemoteIndex must land every URI on the index remote")
		ref, err := idx.Lookup(ctx, asset.Asset{Kind: asset.Directory, URIs: []string{"https://b.example/src"}, Qualifiers: q("vcs.commit", "abc")}, time.Time{})
		if err != nil || ref.Digest != tr.root || ref.URI != "https://b.example/src" {
			t.Fatalf("Lookup = %+v, %v; want %s", ref, err, tr.root)
		}
		if remote.callCount("PushDirectory") != 1 {
			t.Fatalf("remote saw %d PushDirectory calls, want 1", remote.callCount("PushDirectory"))
		}
	})
}

func TestFanoutAllRemotesFailing(t *testing.T) {
	t.Log("when no index remote could answer, the lookup keeps the failure's code instead of reporting a miss")
	ctx := testutil.Context(t)
	broken := startNode(t, nodeConfig{fail: codes.Unavailable})
	wsCAS := store.NewMemory()
	local := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
	fanout := asset.NewFanout(local, []asset.Tier{remoteTier(t, broken, "broken", "user", wsCAS)}, asset.FanoutOptions{})
	_, err := fanout.Lookup(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{"https://a.example/x"}}, time.Time{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Lookup with the only remote failing: %v; want UNAVAILABLE naming it", err)
	}
}

func TestFanoutDigestFunctions(t *testing.T) {
	ctx := testutil.Context(t)
	shaOnly := startNode(t, nodeConfig{functions: digest.SetOf(digest.SHA256)})
	b3Remote := startNode(t, nodeConfig{})
	wsCAS := store.NewMemory()
	content := []byte("blake3 artifact")
	b3 := putBlobIn(t, wsCAS, digest.BLAKE3, content)
	putBlobIn(t, b3Remote.cas, digest.BLAKE3, content)
	uri := "https://a.example/b3"
	a := asset.Asset{Kind: asset.Blob, URIs: []string{uri}, Func: digest.BLAKE3}
	if err := b3Remote.index.Record(ctx, a, asset.Ref{Digest: b3}); err != nil {
		t.Fatal(err)
	}
	local := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
	tiers := []asset.Tier{remoteTier(t, shaOnly, "sha-only", "user", wsCAS), remoteTier(t, b3Remote, "b3", "user", wsCAS)}
	var mu sync.Mutex
	var hitFuncs []digest.Function
	opts := asset.FanoutOptions{OnRemoteHit: func(a asset.Asset, _ asset.Ref, _ asset.Tier) {
		mu.Lock()
		defer mu.Unlock()
		hitFuncs = append(hitFuncs, a.Func)
	}}
	ws := startNode(t, nodeConfig{cas: wsCAS, index: asset.NewFanout(asset.NewCompletenessCheckingIndex(local, wsCAS), tiers, opts)})

	t.Run("blake3 fetch through the fan-out", func(t *testing.T) {
		t.Log("a BLAKE3 fetch asks the BLAKE3 remote in BLAKE3 and skips the SHA-256-only one without a call")
		resp, err := ws.fetch.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{uri}, DigestFunction: repb.DigestFunction_BLAKE3})
		if err != nil || !proto.Equal(resp.GetBlobDigest(), b3.Proto()) || resp.GetDigestFunction() != repb.DigestFunction_BLAKE3 {
			t.Fatalf("FetchBlob = %v, %v; want %s in BLAKE3", resp, err, b3)
		}
		if n := shaOnly.callCount("FetchBlob"); n != 0 {
			t.Fatalf("the SHA-256-only remote was asked %d times", n)
		}
	})
	t.Run("remote hit recorded in its function", func(t *testing.T) {
		t.Log("the local copy of a BLAKE3 hit is a BLAKE3 association, not a SHA-256 one")
		ref, err := local.Lookup(ctx, a, time.Time{})
		if err != nil || ref.Digest != b3 {
			t.Fatalf("local Lookup = %+v, %v", ref, err)
		}
		_, err = local.Lookup(ctx, asset.Asset{Kind: asset.Blob, URIs: []string{uri}}, time.Time{})
		wantCode(t, err, codes.NotFound)
		mu.Lock()
		defer mu.Unlock()
		if len(hitFuncs) != 1 || hitFuncs[0] != digest.BLAKE3 {
			t.Fatalf("OnRemoteHit saw functions %v, want [blake3] (re-caching must push in BLAKE3)", hitFuncs)
		}
	})
	t.Run("blake3 push not sent to a sha256-only remote", func(t *testing.T) {
		t.Log("write-back of a BLAKE3 association to a remote that does not take BLAKE3 is the store's unsupported-function error, without a call")
		err := tiers[0].Index.Record(ctx, a, asset.Ref{Digest: b3})
		if !store.IsUnsupportedFunction(err) || shaOnly.callCount("PushBlob") != 0 {
			t.Fatalf("Record = %v after %d PushBlob calls; want an UnsupportedFunctionError and none", err, shaOnly.callCount("PushBlob"))
		}
	})
	t.Run("blake3 push to a blake3 remote", func(t *testing.T) {
		t.Log("a BLAKE3 association pushed upstream lands there in BLAKE3")
		pushed := asset.Asset{Kind: asset.Blob, URIs: []string{"https://a.example/pushed-b3"}}
		if err := tiers[1].Index.Record(ctx, pushed, asset.Ref{Digest: b3}); err != nil {
			t.Fatal(err)
		}
		pushed.Func = digest.BLAKE3
		if ref, err := b3Remote.index.Lookup(ctx, pushed, time.Time{}); err != nil || ref.Digest != b3 {
			t.Fatalf("remote Lookup = %+v, %v", ref, err)
		}
	})
}
