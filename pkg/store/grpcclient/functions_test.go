package grpcclient_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// blobIn returns n pseudo-random bytes and their digest under f.
func blobIn(f digest.Function, seed uint64, n int) ([]byte, digest.Digest) {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b, digest.OfBytesIn(f, b)
}

// wantField is the digest_function a request about digests of f must
// carry: none for SHA-256, as before REAPI 2.3.
func wantField(f digest.Function) repb.DigestFunction_Value {
	if f == digest.SHA256 {
		return repb.DigestFunction_UNKNOWN
	}
	return f.Proto()
}

func TestRequestsNameTheirDigestFunction(t *testing.T) {
	for _, f := range []digest.Function{digest.SHA256, digest.SHA1, digest.BLAKE3} {
		t.Run(f.String(), func(t *testing.T) {
			t.Log("every request about digests names their function (SHA-256 ones stay as they were, field unset), and ByteStream names carry blake3/")
			ts := startServer(t, serverConfig{})
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
			cas, ac := r.CAS(), r.ActionCache()
			ctx := context.Background()
			small, ds := blobIn(f, 1, 1000)
			large, dl := blobIn(f, 2, 1<<20+1)
			// The answers depend on the server's support of f; what is
			// checked is what it was asked.
			_ = cas.Put(ctx, ds, bytes.NewReader(small))
			_ = cas.Put(ctx, dl, bytes.NewReader(large))
			_, _ = cas.FindMissing(ctx, []digest.Digest{ds, dl})
			_, _ = readAll(cas, ds, 0)
			_, _ = readAll(cas, dl, 0)
			_ = cas.GetMany(ctx, []digest.Digest{ds})
			_ = ac.UpdateActionResult(ctx, ds, &repb.ActionResult{ExitCode: 1})
			_, _ = ac.GetActionResult(ctx, ds)

			methods := map[string]bool{}
			for _, req := range ts.seen("") {
				methods[req.method] = true
				if req.resource != "" {
					d := ds
					if strings.Contains(req.resource, dl.Hash) {
						d = dl
					}
					if !strings.Contains(req.resource, "/"+d.String()) {
						t.Errorf("%s resource %q does not name %s", req.method, req.resource, d)
					}
					continue
				}
				if req.fn != wantField(f) {
					t.Errorf("%s carried digest_function %v; want %v", req.method, req.fn, wantField(f))
				}
			}
			for _, m := range []string{"BatchUpdateBlobs", "Write", "FindMissingBlobs", "BatchReadBlobs", "Read", "UpdateActionResult", "GetActionResult"} {
				if !methods[m] {
					t.Errorf("no %s request was made", m)
				}
			}
		})
	}
}

// answering makes a test server answer FindMissingBlobs (everything is
// missing), BatchUpdateBlobs (kept) and BatchReadBlobs (from what was
// kept) itself, whatever the digest function, so that the client's side
// of a transfer is tested apart from the server's support of functions.
type answering struct {
	mu   sync.Mutex
	data map[string][]byte // by hash
}

func (a *answering) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch q := req.(type) {
	case *repb.FindMissingBlobsRequest:
		return &repb.FindMissingBlobsResponse{MissingBlobDigests: q.GetBlobDigests()}, nil
	case *repb.BatchUpdateBlobsRequest:
		resp := &repb.BatchUpdateBlobsResponse{}
		for _, e := range q.GetRequests() {
			a.data[e.GetDigest().GetHash()] = e.GetData()
			resp.Responses = append(resp.Responses, &repb.BatchUpdateBlobsResponse_Response{Digest: e.GetDigest(), Status: status.New(codes.OK, "").Proto()})
		}
		return resp, nil
	case *repb.BatchReadBlobsRequest:
		resp := &repb.BatchReadBlobsResponse{}
		for _, d := range q.GetDigests() {
			resp.Responses = append(resp.Responses, &repb.BatchReadBlobsResponse_Response{Digest: d, Data: a.data[d.GetHash()], Status: status.New(codes.OK, "").Proto()})
		}
		return resp, nil
	}
	return h(ctx, req)
}

func TestMixedFunctionsAreSplitPerRequest(t *testing.T) {
	t.Log("a request names one digest function: a call about digests of several is one request per function, and the answer's digests are read under the request's function")
	a := &answering{data: map[string][]byte{}}
	ts := startServer(t, serverConfig{unary: a.unary})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	ctx := context.Background()
	fns := []digest.Function{digest.SHA256, digest.BLAKE3, digest.SHA1}
	blobs := map[digest.Digest][]byte{}
	var ds []digest.Digest
	for i, f := range fns {
		for k := range 2 {
			b, d := blobIn(f, uint64(10*i+k+1), 100+k)
			blobs[d] = b
			ds = append(ds, d)
		}
	}
	// The same bytes under SHA-256 and BLAKE3: equal hex lengths, two blobs.
	same := []byte("one content, two digests")
	for _, f := range []digest.Function{digest.SHA256, digest.BLAKE3} {
		d := digest.OfBytesIn(f, same)
		blobs[d] = same
		ds = append(ds, d)
	}

	if err := r.PutMany(ctx, blobs); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	missing, err := r.CAS().FindMissing(ctx, ds)
	if err != nil {
		t.Fatalf("FindMissing: %v", err)
	}
	if got, want := digest.NewSet(missing...), digest.NewSet(ds...); len(got) != len(want) || len(got.Difference(want)) != 0 {
		t.Errorf("FindMissing answered %v; want %v (each digest under its own function)", got.Sorted(), want.Sorted())
	}
	for i, res := range r.CAS().GetMany(ctx, ds) {
		if res.Err != nil || !bytes.Equal(res.Data, blobs[ds[i]]) {
			t.Errorf("GetMany %s: %d bytes, %v; want the blob", ds[i], len(res.Data), res.Err)
		}
	}

	fnOf := map[string]repb.DigestFunction_Value{}
	for _, d := range ds {
		fnOf[d.Hash] = wantField(d.Func)
	}
	for _, m := range []string{"BatchUpdateBlobs", "FindMissingBlobs", "BatchReadBlobs"} {
		reqs := ts.seen(m)
		var named []repb.DigestFunction_Value
		for _, req := range reqs {
			named = append(named, req.fn)
			for _, h := range req.hashes {
				if fnOf[h] != req.fn {
					t.Errorf("%s naming %v carried %s of another function", m, req.fn, h)
				}
			}
		}
		slices.Sort(named)
		if want := []repb.DigestFunction_Value{repb.DigestFunction_UNKNOWN, repb.DigestFunction_SHA1, repb.DigestFunction_BLAKE3}; !slices.Equal(named, want) {
			t.Errorf("%s requests named %v; want one per function: %v", m, named, want)
		}
	}
}

// capsAnswer makes a test server answer GetCapabilities with caps, or
// fail it with UNIMPLEMENTED when caps is nil.
func capsAnswer(caps *repb.ServerCapabilities) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if path.Base(info.FullMethod) != "GetCapabilities" {
			return h(ctx, req)
		}
		if caps == nil {
			return nil, status.Error(codes.Unimplemented, "no Capabilities service")
		}
		return caps, nil
	}
}

func TestUnsupportedFunctionsAreNeverSent(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		sc        serverConfig
	}{
		{"sha256-only server", "a remote whose Capabilities list SHA-256 alone takes nothing else", serverConfig{functions: digest.SetOf(digest.SHA256)}},
		{"no Capabilities service", "a remote without Capabilities predates REAPI 2.3: SHA-256 only", serverConfig{unary: capsAnswer(nil)}},
		{"empty digest_functions", "a remote listing no function takes SHA-256 only", serverConfig{unary: capsAnswer(&repb.ServerCapabilities{CacheCapabilities: &repb.CacheCapabilities{}})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			ts := startServer(t, tc.sc)
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr}, grpcclient.WithBreaker(1, 0))
			cas, ac := r.CAS(), r.ActionCache()
			ctx := context.Background()
			if fs, err := r.Functions(ctx); err != nil || fs != digest.SetOf(digest.SHA256) {
				t.Fatalf("Functions = %v, %v; want sha256", fs, err)
			}
			shaData, sha := blobIn(digest.SHA256, 1, 500)
			if err := cas.Put(ctx, sha, bytes.NewReader(shaData)); err != nil {
				t.Fatalf("SHA-256 Put: %v", err)
			}
			data, b3 := blobIn(digest.BLAKE3, 2, 700)
			_, big := blobIn(digest.BLAKE3, 3, 2<<20)
			calls := func() int { return ts.total() - ts.count("GetCapabilities") }
			before := calls()

			for _, d := range []digest.Digest{b3, big} {
				if _, err := cas.Get(ctx, d, 0); status.Code(err) != codes.NotFound || !store.IsUnsupportedFunction(err) {
					t.Errorf("Get %s = %v; want NOT_FOUND for an unsupported function", d, err)
				}
			}
			if res := cas.GetMany(ctx, []digest.Digest{b3, sha}); status.Code(res[0].Err) != codes.NotFound || res[1].Err != nil || !bytes.Equal(res[1].Data, shaData) {
				t.Errorf("GetMany = %v, %v; want a miss for BLAKE3 and the SHA-256 blob", res[0].Err, res[1].Err)
			}
			if missing, err := cas.FindMissing(ctx, []digest.Digest{b3, sha}); err != nil || !slices.Equal(missing, []digest.Digest{b3}) {
				t.Errorf("FindMissing = %v, %v; want the BLAKE3 blob missing, unasked", missing, err)
			}
			for name, err := range map[string]error{
				"Put":                cas.Put(ctx, b3, bytes.NewReader(data)),
				"PutBytes":           cas.PutBytes(ctx, b3, data, store.PutHint{}),
				"UpdateActionResult": ac.UpdateActionResult(ctx, b3, &repb.ActionResult{}),
				"PutMany":            r.PutMany(ctx, map[digest.Digest][]byte{b3: data, sha: shaData}),
			} {
				if !store.IsUnsupportedFunction(err) {
					t.Errorf("%s of a BLAKE3 digest = %v; want an UnsupportedFunctionError", name, err)
				}
			}
			if _, err := ac.GetActionResult(ctx, b3); status.Code(err) != codes.NotFound {
				t.Errorf("GetActionResult of a BLAKE3 action = %v; want NOT_FOUND", err)
			}

			for _, req := range ts.seen("") {
				if req.fn != repb.DigestFunction_UNKNOWN || slices.Contains(req.hashes, b3.Hash) || strings.Contains(req.resource, "blake3") {
					t.Errorf("the remote was sent %+v", req)
				}
			}
			// GetMany, FindMissing and PutMany asked about the SHA-256 blob.
			if n := calls() - before; n != 3 {
				t.Errorf("%d calls reached the remote; want 3, all about SHA-256", n)
			}
			for _, h := range r.Health() {
				if h.Health == grpcclient.HealthDown || h.Health == grpcclient.HealthRefused || h.Breaker != grpcclient.StateClosed {
					t.Errorf("role %s is %s, breaker %s: an unsupported function is no failure of the remote", h.Role, h.Health, h.Breaker)
				}
			}
		})
	}
}

func TestGateMakesNoCallWhileTheRemoteFails(t *testing.T) {
	t.Log("once the remote's functions are known, an unsupported digest is answered without a call, even while every call fails, and never opens the breaker")
	f := &failing{}
	ts := startServer(t, serverConfig{functions: digest.SetOf(digest.SHA256), unary: f.unary})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, RetryLimit: 0}, grpcclient.WithBreaker(1, 0))
	ctx := context.Background()
	if _, err := r.Functions(ctx); err != nil {
		t.Fatal(err)
	}
	f.set(codes.Unavailable)
	before := ts.total()
	_, b3 := blobIn(digest.BLAKE3, 1, 100)
	for range 3 {
		if _, err := r.CAS().Get(ctx, b3, 0); status.Code(err) != codes.NotFound {
			t.Fatalf("Get = %v; want NOT_FOUND", err)
		}
	}
	if n := ts.total() - before; n != 0 {
		t.Errorf("%d calls reached the remote", n)
	}
	if s := r.BreakerState(grpcclient.RoleCAS); s != grpcclient.StateClosed {
		t.Errorf("breaker %s; want closed", s)
	}
}

func TestFunctionsUnknownUntilCapabilitiesAnswer(t *testing.T) {
	t.Log("a BLAKE3 read of a remote whose Capabilities cannot be had fails with that failure (it may take BLAKE3); a SHA-256 read asks no Capabilities first")
	f := &failing{code: codes.Unavailable}
	ts := startServer(t, serverConfig{unary: f.unary})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, RetryLimit: 0}, grpcclient.WithBreaker(-1, 0))
	ctx := context.Background()
	_, b3 := blobIn(digest.BLAKE3, 1, 100)
	if _, err := r.CAS().FindMissing(ctx, []digest.Digest{b3}); status.Code(err) != codes.Unavailable {
		t.Errorf("BLAKE3 FindMissing = %v; want UNAVAILABLE", err)
	}
	if n := ts.count("FindMissingBlobs"); n != 0 {
		t.Errorf("%d FindMissingBlobs sent before the remote's functions were known", n)
	}
	_, sha := blobIn(digest.SHA256, 2, 100)
	caps := ts.count("GetCapabilities")
	_, _ = r.CAS().FindMissing(ctx, []digest.Digest{sha})
	if n := ts.count("GetCapabilities") - caps; n != 0 {
		t.Errorf("a SHA-256 FindMissing asked for Capabilities %d times", n)
	}
	f.set(codes.OK)
	if fs, err := r.Functions(ctx); err != nil || !fs.Has(digest.BLAKE3) {
		t.Errorf("Functions = %v, %v once the remote answers; want every function", fs, err)
	}
}
