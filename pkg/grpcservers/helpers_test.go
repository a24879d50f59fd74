package grpcservers_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/grpcservers"
)

// env is one in-process castd server over a memory store and a client
// connection to it.
type env struct {
	mem  *store.Memory
	conn *grpc.ClientConn
	cas  repb.ContentAddressableStorageClient
	bs   bspb.ByteStreamClient
	ac   repb.ActionCacheClient
	caps repb.CapabilitiesClient
}

func newEnv(t testing.TB, opts grpcservers.Options) *env {
	t.Helper()
	mem := store.NewMemory()
	conn := serveBackend(t, grpcservers.NewStaticBackend(mem, func(string) store.ActionCache { return mem }), opts)
	return &env{mem: mem, conn: conn,
		cas: repb.NewContentAddressableStorageClient(conn), bs: bspb.NewByteStreamClient(conn),
		ac: repb.NewActionCacheClient(conn), caps: repb.NewCapabilitiesClient(conn)}
}

// serveBackend serves b in process over bufconn and returns a client
// connection to it.
func serveBackend(t testing.TB, b grpcservers.Backend, opts grpcservers.Options) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpcservers.NewServer(b, opts)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// put stores b in the memory store directly.
func (e *env) put(t testing.TB, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(b)
	if err := e.mem.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

// has reports whether the memory store holds d.
func (e *env) has(t testing.TB, d digest.Digest) bool {
	t.Helper()
	missing, err := e.mem.FindMissing(context.Background(), []digest.Digest{d})
	if err != nil {
		t.Fatal(err)
	}
	return len(missing) == 0
}

func wantCode(t testing.TB, err error, want codes.Code, substr string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != want {
		t.Fatalf("got %v, want code %v", err, want)
	}
	if substr != "" && !strings.Contains(st.Message(), substr) {
		t.Fatalf("error %q does not mention %q", st.Message(), substr)
	}
}

// pattern returns n deterministic bytes seeded by seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func (e *env) digestOf(b []byte) *repb.Digest { return digest.OfBytes(b).Proto() }
