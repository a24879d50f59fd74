package grpcservers_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
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
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{Server: opts, Listen: testutil.ListenBufconn})
	mem := srv.Mem
	conn := srv.Dial(t, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	return &env{mem: mem, conn: conn,
		cas: repb.NewContentAddressableStorageClient(conn), bs: bspb.NewByteStreamClient(conn),
		ac: repb.NewActionCacheClient(conn), caps: repb.NewCapabilitiesClient(conn)}
}

// serveBackend serves b in process over bufconn and returns a client
// connection to it.
func serveBackend(t testing.TB, b grpcservers.Backend, opts grpcservers.Options) *grpc.ClientConn {
	t.Helper()
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{Backend: b, Server: opts, Listen: testutil.ListenBufconn})
	return srv.Dial(t, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
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
