package grpcservers_test

import (
	"context"
	"io"
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store"
)

func TestCapabilitiesAdvertiseZstd(t *testing.T) {
	// Why: Bazel sends compressed-blobs only to a server listing ZSTD in
	// supported_compressors, and compressed batch entries only when it is
	// in supported_batch_update_compressors.
	e := newEnv(t, grpcservers.Options{})
	c, err := e.caps.GetCapabilities(testutil.Context(t), &repb.GetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	zstd := []repb.Compressor_Value{repb.Compressor_ZSTD}
	cc := c.GetCacheCapabilities()
	if !slices.Equal(cc.GetSupportedCompressors(), zstd) || !slices.Equal(cc.GetSupportedBatchUpdateCompressors(), zstd) {
		t.Fatalf("compressors %v, batch %v; want [ZSTD] for both", cc.GetSupportedCompressors(), cc.GetSupportedBatchUpdateCompressors())
	}
}

func TestCapabilitiesUpdateEnabledAgreesWithUpdateActionResult(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend grpcservers.Backend
		want    bool
	}{
		// Why: an instance with an action cache accepts UpdateActionResult,
		// so Capabilities must say so (scenario 2 said false, and accepted).
		{"action cache", grpcservers.NewStaticBackend(store.NewMemory(), func(string) store.ActionCache { return store.NewMemory() }), true},
		// Why: without one UpdateActionResult fails, so a client must not
		// be told to upload results.
		{"no action cache", grpcservers.NewStaticBackend(store.NewMemory(), nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := serveBackend(t, tc.backend, grpcservers.Options{})
			ctx := testutil.Context(t)
			c, err := repb.NewCapabilitiesClient(conn).GetCapabilities(ctx, &repb.GetCapabilitiesRequest{InstanceName: "p"})
			if err != nil {
				t.Fatal(err)
			}
			_, uerr := repb.NewActionCacheClient(conn).UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
				InstanceName: "p", ActionDigest: digest.OfBytes([]byte("action")).Proto(), ActionResult: &repb.ActionResult{}})
			got := c.GetCacheCapabilities().GetActionCacheUpdateCapabilities().GetUpdateEnabled()
			if got != tc.want || (uerr == nil) != tc.want {
				t.Fatalf("update_enabled %v, UpdateActionResult %v; want %v and agreement", got, uerr, tc.want)
			}
		})
	}
}

// knownOnly serves instance "known" only; any other is the
// INVALID_ARGUMENT castd's instance set answers.
type knownOnly struct{ mem *store.Memory }

func (k knownOnly) check(instance string) error {
	if instance != "known" {
		return status.Errorf(codes.InvalidArgument, "unknown instance name %q", instance)
	}
	return nil
}

func (k knownOnly) CAS(_ context.Context, instance string) (store.CAS, error) {
	return k.mem, k.check(instance)
}

func (k knownOnly) ActionCache(_ context.Context, instance string) (store.ActionCache, error) {
	return k.mem, k.check(instance)
}

func TestUnknownInstanceIsInvalidArgumentOnEveryRPC(t *testing.T) {
	// Why: a client that mistyped its instance learns it from the first
	// call, GetCapabilities included, with the same code and message.
	conn := serveBackend(t, knownOnly{store.NewMemory()}, grpcservers.Options{})
	d := digest.OfBytes([]byte("blob")).Proto()
	cas, bs := repb.NewContentAddressableStorageClient(conn), bspb.NewByteStreamClient(conn)
	ac, caps := repb.NewActionCacheClient(conn), repb.NewCapabilitiesClient(conn)
	calls := map[string]func(ctx context.Context, inst string) error{
		"GetCapabilities": func(ctx context.Context, inst string) error {
			_, err := caps.GetCapabilities(ctx, &repb.GetCapabilitiesRequest{InstanceName: inst})
			return err
		},
		"FindMissingBlobs": func(ctx context.Context, inst string) error {
			_, err := cas.FindMissingBlobs(ctx, &repb.FindMissingBlobsRequest{InstanceName: inst, BlobDigests: []*repb.Digest{d}})
			return err
		},
		"BatchReadBlobs": func(ctx context.Context, inst string) error {
			_, err := cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{InstanceName: inst, Digests: []*repb.Digest{d}})
			return err
		},
		"BatchUpdateBlobs": func(ctx context.Context, inst string) error {
			_, err := cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{InstanceName: inst,
				Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d, Data: []byte("blob")}}})
			return err
		},
		"GetActionResult": func(ctx context.Context, inst string) error {
			_, err := ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: inst, ActionDigest: d})
			if status.Code(err) == codes.NotFound {
				return nil
			}
			return err
		},
		"Read": func(ctx context.Context, inst string) error {
			s, err := bs.Read(ctx, &bspb.ReadRequest{ResourceName: inst + "/blobs/" + digest.OfBytes([]byte("blob")).String()})
			if err != nil {
				return err
			}
			if _, err = s.Recv(); err == io.EOF || status.Code(err) == codes.NotFound {
				return nil
			}
			return err
		},
		"QueryWriteStatus": func(ctx context.Context, inst string) error {
			_, err := bs.QueryWriteStatus(ctx, &bspb.QueryWriteStatusRequest{ResourceName: inst + "/uploads/u/blobs/" + digest.OfBytes([]byte("blob")).String()})
			if status.Code(err) == codes.NotFound {
				return nil
			}
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx := testutil.Context(t)
			if err := call(ctx, "known"); err != nil {
				t.Fatalf("known instance: %v", err)
			}
			wantCode(t, call(ctx, "typo"), codes.InvalidArgument, `unknown instance name "typo"`)
		})
	}
}

func TestMaxBatchTotalSizeIsTheEnforcedLimit(t *testing.T) {
	// Why: clients size their batches from max_batch_total_size_bytes; a
	// batch of exactly that much must pass, one byte more must not.
	const limit = 4000
	e := newEnv(t, grpcservers.Options{MaxBatchTotalSizeBytes: limit})
	ctx := testutil.Context(t)
	c, err := e.caps.GetCapabilities(ctx, &repb.GetCapabilitiesRequest{})
	if err != nil || c.GetCacheCapabilities().GetMaxBatchTotalSizeBytes() != limit {
		t.Fatalf("advertised %d, %v; want %d", c.GetCacheCapabilities().GetMaxBatchTotalSizeBytes(), err, limit)
	}
	a, b := pattern(limit/2, 1), pattern(limit/2, 2)
	over := pattern(limit/2+1, 3)
	update := func(blobs ...[]byte) error {
		req := &repb.BatchUpdateBlobsRequest{}
		for _, x := range blobs {
			req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: e.digestOf(x), Data: x})
		}
		_, err := e.cas.BatchUpdateBlobs(ctx, req)
		return err
	}
	read := func(blobs ...[]byte) error {
		req := &repb.BatchReadBlobsRequest{}
		for _, x := range blobs {
			req.Digests = append(req.Digests, e.digestOf(x))
		}
		_, err := e.cas.BatchReadBlobs(ctx, req)
		return err
	}
	if err := update(a, b); err != nil {
		t.Fatalf("BatchUpdateBlobs at the limit: %v", err)
	}
	wantCode(t, update(a, over), codes.InvalidArgument, "max_batch_total_size_bytes")
	if err := read(a, b); err != nil {
		t.Fatalf("BatchReadBlobs at the limit: %v", err)
	}
	wantCode(t, read(a, over), codes.InvalidArgument, "max_batch_total_size_bytes")
}
