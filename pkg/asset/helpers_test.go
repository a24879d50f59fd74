package asset_test

import (
	"bytes"
	"context"
	"path"
	"sync"
	"testing"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store"
)

// nodeConfig shapes one in-process castd: REAPI plus Remote Asset.
type nodeConfig struct {
	cas   store.CAS   // nil: a fresh memory store
	index asset.Index // nil: a local index over memory records
	clock *clock.Fake // for the default index; nil: a fresh fake clock
	fail  codes.Code  // when not OK, every asset call fails with it
	// functions are the digest functions the node takes and advertises
	// in Capabilities; zero: all.
	functions digest.FunctionSet
}

// node is a castd server on 127.0.0.1 and a client of its asset services,
// counting the asset calls it receives.
type node struct {
	addr  string
	cas   store.CAS
	index asset.Index
	fetch assetpb.FetchClient
	push  assetpb.PushClient

	mu        sync.Mutex
	calls     map[string]int
	instances []string
}

func startNode(t *testing.T, nc nodeConfig) *node {
	t.Helper()
	n := &node{cas: nc.cas, index: nc.index, calls: map[string]int{}}
	if n.cas == nil {
		n.cas = store.NewMemory()
	}
	if n.index == nil {
		if nc.clock == nil {
			nc.clock = newClock()
		}
		n.index = asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{Clock: nc.clock})
	}
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !n.count(info.FullMethod, req) {
			return h(ctx, req)
		}
		if nc.fail != codes.OK {
			return nil, status.Error(nc.fail, "injected failure")
		}
		return h(ctx, req)
	}
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{CAS: n.cas, Unary: []grpc.UnaryServerInterceptor{record}, Server: grpcservers.Options{DigestFunctions: nc.functions}, Register: func(s *grpc.Server) {
		asset.NewServer(func(context.Context, string) (asset.Index, store.CAS, error) { return n.index, n.cas, nil }, asset.Options{DigestFunctions: nc.functions}).Register(s)
	}})
	n.addr = srv.Addr
	conn := srv.Dial(t)
	n.fetch, n.push = assetpb.NewFetchClient(conn), assetpb.NewPushClient(conn)
	return n
}

// count records an asset call and reports whether it was one.
func (n *node) count(method string, req any) bool {
	r, ok := req.(interface{ GetInstanceName() string })
	if !ok || path.Dir(method) != "/build.bazel.remote.asset.v1.Fetch" && path.Dir(method) != "/build.bazel.remote.asset.v1.Push" {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls[path.Base(method)]++
	n.instances = append(n.instances, r.GetInstanceName())
	return true
}

// callCount returns how many calls of method ("FetchBlob") n received.
func (n *node) callCount(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

// instancesSeen returns the instance names of the asset calls n received.
func (n *node) instancesSeen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.instances...)
}

// newClock returns a fake clock for expiry tests.
func newClock() *clock.Fake { return clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

// putBlob stores b in cas and returns its SHA-256 digest.
func putBlob(t *testing.T, cas store.CAS, b []byte) digest.Digest {
	t.Helper()
	return putBlobIn(t, cas, digest.SHA256, b)
}

// putBlobIn stores b in cas under its digest in fn.
func putBlobIn(t *testing.T, cas store.CAS, fn digest.Function, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytesIn(fn, b)
	if err := cas.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

// testTree is a two-level tree: root holds file "a" and directory "sub",
// which holds file "b".
type testTree struct {
	root, sub, a, b digest.Digest
	contentA        []byte
	contentB        []byte
}

// putTree stores the Directory messages of a fresh SHA-256 tree and, when
// withFiles, its file blobs.
func putTree(t *testing.T, cas store.CAS, seed string, withFiles bool) testTree {
	t.Helper()
	return putTreeIn(t, cas, digest.SHA256, seed, withFiles)
}

// putTreeIn is putTree with every digest in fn.
func putTreeIn(t *testing.T, cas store.CAS, fn digest.Function, seed string, withFiles bool) testTree {
	t.Helper()
	tr := testTree{contentA: []byte("file a " + seed), contentB: []byte("file b " + seed)}
	tr.a, tr.b = digest.OfBytesIn(fn, tr.contentA), digest.OfBytesIn(fn, tr.contentB)
	if withFiles {
		putBlobIn(t, cas, fn, tr.contentA)
		putBlobIn(t, cas, fn, tr.contentB)
	}
	tr.sub = putMessage(t, cas, fn, &repb.Directory{Files: []*repb.FileNode{{Name: "b", Digest: tr.b.Proto()}}})
	tr.root = putMessage(t, cas, fn, &repb.Directory{
		Files:       []*repb.FileNode{{Name: "a", Digest: tr.a.Proto()}},
		Directories: []*repb.DirectoryNode{{Name: "sub", Digest: tr.sub.Proto()}},
	})
	return tr
}

func putMessage(t *testing.T, cas store.CAS, fn digest.Function, m *repb.Directory) digest.Digest {
	t.Helper()
	_, b, err := digest.OfMessageIn(fn, m)
	if err != nil {
		t.Fatal(err)
	}
	return putBlobIn(t, cas, fn, b)
}

// q builds qualifiers from name, value pairs.
func q(kv ...string) []*assetpb.Qualifier {
	var out []*assetpb.Qualifier
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &assetpb.Qualifier{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// wantCode fails t unless err has code want.
func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("got %v, want code %s", err, want)
	}
}
