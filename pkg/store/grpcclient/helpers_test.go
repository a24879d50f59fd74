package grpcclient_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

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
	unixPath string // listen on this socket instead of 127.0.0.1:0
}

// testServer is a castd REAPI server (proxy.NewServer over a memory store) on
// 127.0.0.1, recording every call it receives.
type testServer struct {
	addr string
	mem  *store.Memory

	mu        sync.Mutex
	calls     map[string]int // method name → calls
	auth      []string       // authorization metadata of every call ("" if none)
	instances map[string]bool
	findSizes []int // digests per FindMissingBlobs call
}

func startServer(t *testing.T, sc serverConfig) *testServer {
	t.Helper()
	ts := &testServer{mem: store.NewMemory(), calls: map[string]int{}, instances: map[string]bool{}}
	var cas store.CAS = ts.mem
	if sc.wrap != nil {
		cas = sc.wrap(ts.mem)
	}
	backend := &recordingBackend{ts: ts, cas: cas}
	unary := []grpc.UnaryServerInterceptor{ts.recordUnary}
	if sc.unary != nil {
		unary = append(unary, sc.unary)
	}
	stream := []grpc.StreamServerInterceptor{ts.recordStream}
	if sc.stream != nil {
		stream = append(stream, sc.stream)
	}
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
	if sc.creds != nil {
		opts = append(opts, grpc.Creds(sc.creds))
	}
	s := grpcservers.NewServer(backend, grpcservers.Options{MaxBatchTotalSizeBytes: sc.maxBatch}, opts...)
	network, address := "tcp", "127.0.0.1:0"
	if sc.unixPath != "" {
		network, address = "unix", sc.unixPath
	}
	lis, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	ts.addr = lis.Addr().String()
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
	return h(ctx, req)
}

func (ts *testServer) recordStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ts.record(ss.Context(), info.FullMethod)
	return h(srv, ss)
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
	opts = append([]grpcclient.Option{grpcclient.WithSleeper(noSleep)}, opts...)
	r, err := grpcclient.Dial(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("Dial(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

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

// fakeClock is a Clock that moves only when Advance is called. Timers fire
// synchronously inside Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) grpcclient.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Advance moves the clock and runs the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// timers returns how many timers were ever created.
func (c *fakeClock) timerCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// waitArmed polls until a timer created after timer number after (0-based,
// in creation order; -1 for any) is pending, and returns its number.
func (c *fakeClock) waitArmed(t *testing.T, after int) int {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for i := after + 1; i < len(c.timers); i++ {
			if !c.timers[i].done {
				c.mu.Unlock()
				return i
			}
		}
		c.mu.Unlock()
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no timer armed after #%d", after)
		}
	}
}
