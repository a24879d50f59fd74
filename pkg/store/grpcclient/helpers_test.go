package grpcclient_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// serverConfig shapes one in-process REAPI server.
type serverConfig struct {
	creds    credentials.TransportCredentials
	wrap     func(store.CAS) store.CAS
	unary    grpc.UnaryServerInterceptor  // runs after the call is recorded
	stream   grpc.StreamServerInterceptor // runs after the call is recorded
	maxBatch int64
	unix     bool // listen on a Unix socket (its path is addr) instead of 127.0.0.1:0
	// functions are the digest functions the server takes and advertises;
	// zero means all.
	functions digest.FunctionSet
}

// testServer is a castd REAPI server (grpcservers.NewServer over a memory store) on
// 127.0.0.1, recording every call it receives.
type testServer struct {
	addr string
	mem  *store.Memory

	mu        sync.Mutex
	calls     map[string]int // method name → calls
	auth      []string       // authorization metadata of every call ("" if none)
	instances map[string]bool
	findSizes []int         // digests per FindMissingBlobs call
	requests  []seenRequest // every request, in order of arrival
}

// seenRequest is what a request told the server about digests: its
// digest_function field and the hashes it carried (unary calls), or the
// ByteStream resource name (Read, Write).
type seenRequest struct {
	method   string
	fn       repb.DigestFunction_Value
	hashes   []string
	resource string
}

func startServer(t *testing.T, sc serverConfig) *testServer {
	t.Helper()
	ts := &testServer{mem: store.NewMemory(), calls: map[string]int{}, instances: map[string]bool{}}
	var cas store.CAS = ts.mem
	if sc.wrap != nil {
		cas = sc.wrap(ts.mem)
	}
	o := testutil.REAPIOptions{
		Backend: &recordingBackend{ts: ts, cas: cas},
		Server:  grpcservers.Options{MaxBatchTotalSizeBytes: sc.maxBatch, DigestFunctions: sc.functions},
		Unary:   []grpc.UnaryServerInterceptor{ts.recordUnary},
		Stream:  []grpc.StreamServerInterceptor{ts.recordStream},
	}
	if sc.unary != nil {
		o.Unary = append(o.Unary, sc.unary)
	}
	if sc.stream != nil {
		o.Stream = append(o.Stream, sc.stream)
	}
	if sc.creds != nil {
		o.GRPC = []grpc.ServerOption{grpc.Creds(sc.creds)}
	}
	if sc.unix {
		o.Listen = testutil.ListenUnix
	}
	ts.addr = testutil.StartREAPI(t, o).Addr
	return ts
}

func (ts *testServer) record(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.calls[path.Base(method)]++
	ts.auth = append(ts.auth, strings.Join(md.Get("authorization"), ","))
}

func (ts *testServer) recordUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ts.record(ctx, info.FullMethod)
	if r, ok := req.(*repb.FindMissingBlobsRequest); ok {
		ts.mu.Lock()
		ts.findSizes = append(ts.findSizes, len(r.GetBlobDigests()))
		ts.mu.Unlock()
	}
	ts.see(info.FullMethod, req)
	return h(ctx, req)
}

// see notes req as a seenRequest of method.
func (ts *testServer) see(method string, req any) {
	r := seenRequest{method: path.Base(method)}
	if f, ok := req.(interface {
		GetDigestFunction() repb.DigestFunction_Value
	}); ok {
		r.fn = f.GetDigestFunction()
	}
	var ds []*repb.Digest
	switch q := req.(type) {
	case *repb.FindMissingBlobsRequest:
		ds = q.GetBlobDigests()
	case *repb.BatchReadBlobsRequest:
		ds = q.GetDigests()
	case *repb.BatchUpdateBlobsRequest:
		for _, e := range q.GetRequests() {
			ds = append(ds, e.GetDigest())
		}
	case *repb.GetActionResultRequest:
		ds = []*repb.Digest{q.GetActionDigest()}
	case *repb.UpdateActionResultRequest:
		ds = []*repb.Digest{q.GetActionDigest()}
	case *bspb.ReadRequest:
		r.resource = q.GetResourceName()
	case *bspb.WriteRequest:
		if r.resource = q.GetResourceName(); r.resource == "" {
			return // a later message of the stream
		}
	default:
		return
	}
	for _, d := range ds {
		r.hashes = append(r.hashes, d.GetHash())
	}
	ts.mu.Lock()
	ts.requests = append(ts.requests, r)
	ts.mu.Unlock()
}

// seen returns the requests of method (all when "") received so far.
func (ts *testServer) seen(method string) []seenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []seenRequest
	for _, r := range ts.requests {
		if method == "" || r.method == method {
			out = append(out, r)
		}
	}
	return out
}

func (ts *testServer) recordStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ts.record(ss.Context(), info.FullMethod)
	return h(srv, &seeingStream{ServerStream: ss, ts: ts, method: info.FullMethod})
}

// seeingStream notes the messages a stream receives (see).
type seeingStream struct {
	grpc.ServerStream
	ts     *testServer
	method string
}

func (s *seeingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.ts.see(s.method, m)
	}
	return err
}

// count returns how many calls of method the server received.
func (ts *testServer) count(method string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.calls[method]
}

// total is how many calls of any method the server received.
func (ts *testServer) total() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for _, c := range ts.calls {
		n += c
	}
	return n
}

// authSeen returns the distinct authorization values received, sorted.
func (ts *testServer) authSeen() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range ts.auth {
		seen[a] = true
	}
	var out []string
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// recordingBackend serves one CAS and the memory AC and notes the instance
// names requests carry.
type recordingBackend struct {
	ts  *testServer
	cas store.CAS
}

func (b *recordingBackend) note(instance string) {
	b.ts.mu.Lock()
	b.ts.instances[instance] = true
	b.ts.mu.Unlock()
}

func (b *recordingBackend) CAS(_ context.Context, instance string) (store.CAS, error) {
	b.note(instance)
	return b.cas, nil
}

func (b *recordingBackend) ActionCache(_ context.Context, instance string) (store.ActionCache, error) {
	b.note(instance)
	return b.ts.mem, nil
}

// dial connects to a test server; retries never wait for real.
func dial(t *testing.T, cfg grpcclient.Config, opts ...grpcclient.Option) *grpcclient.Remote {
	t.Helper()
	opts = append([]grpcclient.Option{grpcclient.WithClock(instantBackoff{clock.Real()})}, opts...)
	r, err := grpcclient.Dial(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("Dial(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// instantBackoff is the wall clock except that retry backoff does not
// wait.
type instantBackoff struct{ clock.Clock }

func (instantBackoff) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func newFakeClock() *clock.Fake { return clock.NewFake(time.Unix(1_000_000, 0)) }

// randomBlob returns n pseudo-random bytes and their digest.
func randomBlob(seed uint64, n int) ([]byte, digest.Digest) {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b, digest.OfBytes(b)
}

func put(t *testing.T, cas store.CAS, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(b)
	if err := cas.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put %s: %v", d, err)
	}
	return d
}

func readAll(cas store.CAS, d digest.Digest, offset int64) ([]byte, error) {
	r, err := cas.Get(context.Background(), d, offset)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
