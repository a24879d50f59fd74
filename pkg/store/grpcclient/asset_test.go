package grpcclient_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// fakeAssets is a Remote Asset server that answers every Fetch with inline
// and records the instance names it is sent.
type fakeAssets struct {
	assetpb.UnimplementedFetchServer
	assetpb.UnimplementedPushServer
	inline codes.Code

	mu        sync.Mutex
	instances []string
}

func (f *fakeAssets) note(instance string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances = append(f.instances, instance)
}

func (f *fakeAssets) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.instances...)
}

func (f *fakeAssets) FetchBlob(_ context.Context, req *assetpb.FetchBlobRequest) (*assetpb.FetchBlobResponse, error) {
	f.note(req.GetInstanceName())
	return &assetpb.FetchBlobResponse{Status: &rpcstatus.Status{Code: int32(f.inline), Message: "inline"}, Uri: req.GetUris()[0], BlobDigest: digest.Empty.Proto()}, nil
}

func (f *fakeAssets) FetchDirectory(_ context.Context, req *assetpb.FetchDirectoryRequest) (*assetpb.FetchDirectoryResponse, error) {
	f.note(req.GetInstanceName())
	return &assetpb.FetchDirectoryResponse{Status: &rpcstatus.Status{Code: int32(f.inline), Message: "inline"}, RootDirectoryDigest: digest.Empty.Proto()}, nil
}

func (f *fakeAssets) PushBlob(_ context.Context, req *assetpb.PushBlobRequest) (*assetpb.PushBlobResponse, error) {
	f.note(req.GetInstanceName())
	return &assetpb.PushBlobResponse{}, nil
}

func (f *fakeAssets) PushDirectory(_ context.Context, req *assetpb.PushDirectoryRequest) (*assetpb.PushDirectoryResponse, error) {
	f.note(req.GetInstanceName())
	return &assetpb.PushDirectoryResponse{}, nil
}

func startAssets(t *testing.T, f *fakeAssets) string {
	t.Helper()
	return testutil.ServeGRPC(t, func(s *grpc.Server) {
		assetpb.RegisterFetchServer(s, f)
		assetpb.RegisterPushServer(s, f)
	})
}

func TestAssetClient(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		why    string
		inline codes.Code
		call   func(c *grpcclient.AssetClient) error
		want   codes.Code
	}{
		{"fetch blob hit", "an OK answer comes back as it is", codes.OK, func(c *grpcclient.AssetClient) error {
			resp, err := c.FetchBlob(ctx, &assetpb.FetchBlobRequest{InstanceName: "client", Uris: []string{"https://x.example/a"}})
			if err == nil && resp.GetUri() != "https://x.example/a" {
				t.Errorf("uri %q", resp.GetUri())
			}
			return err
		}, codes.OK},
		{"fetch blob inline not found", "a miss in the status field is the NOT_FOUND miss", codes.NotFound, func(c *grpcclient.AssetClient) error {
			_, err := c.FetchBlob(ctx, &assetpb.FetchBlobRequest{InstanceName: "client", Uris: []string{"https://x.example/a"}})
			return err
		}, codes.NotFound},
		{"fetch directory inline failure", "other inline codes are errors of the remote", codes.PermissionDenied, func(c *grpcclient.AssetClient) error {
			_, err := c.FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{InstanceName: "client", Uris: []string{"https://x.example/a"}})
			return err
		}, codes.PermissionDenied},
		{"push blob", "pushes carry the remote's instance too", codes.OK, func(c *grpcclient.AssetClient) error {
			return c.PushBlob(ctx, &assetpb.PushBlobRequest{InstanceName: "client", Uris: []string{"https://x.example/a"}})
		}, codes.OK},
		{"push directory", "pushes carry the remote's instance too", codes.OK, func(c *grpcclient.AssetClient) error {
			return c.PushDirectory(ctx, &assetpb.PushDirectoryRequest{InstanceName: "client", Uris: []string{"https://x.example/a"}})
		}, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := &fakeAssets{inline: tc.inline}
			r := dial(t, grpcclient.Config{URL: "grpc://" + startAssets(t, f), InstanceName: "remote-inst", Name: "idx"})
			err := tc.call(r.Assets())
			if status.Code(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if err != nil && !strings.HasPrefix(status.Convert(err).Message(), "upstream idx: ") {
				t.Fatalf("error %q is not labelled with the remote", err)
			}
			if seen := f.seen(); len(seen) != 1 || seen[0] != "remote-inst" {
				t.Fatalf("remote saw instances %q, want [remote-inst]", seen)
			}
		})
	}
}

func TestAssetClientKeepsRequest(t *testing.T) {
	t.Log("the caller's request must not be rewritten with the remote's instance name")
	r := dial(t, grpcclient.Config{URL: "grpc://" + startAssets(t, &fakeAssets{}), InstanceName: "remote-inst"})
	req := &assetpb.FetchBlobRequest{InstanceName: "client", Uris: []string{"https://x.example/a"}}
	if _, err := r.Assets().FetchBlob(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if req.GetInstanceName() != "client" {
		t.Fatalf("request instance became %q", req.GetInstanceName())
	}
}

// fakeCaps advertises digest functions in its cache capabilities.
type fakeCaps struct {
	repb.UnimplementedCapabilitiesServer
	functions []repb.DigestFunction_Value
}

func (f fakeCaps) GetCapabilities(context.Context, *repb.GetCapabilitiesRequest) (*repb.ServerCapabilities, error) {
	return &repb.ServerCapabilities{CacheCapabilities: &repb.CacheCapabilities{DigestFunctions: f.functions}}, nil
}

func TestAssetClientDigestFunctions(t *testing.T) {
	ctx := context.Background()
	fetch := func(fn repb.DigestFunction_Value) func(c *grpcclient.AssetClient) error {
		return func(c *grpcclient.AssetClient) error {
			_, err := c.FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{"https://x.example/a"}, DigestFunction: fn})
			return err
		}
	}
	pushDir := func(fn repb.DigestFunction_Value) func(c *grpcclient.AssetClient) error {
		return func(c *grpcclient.AssetClient) error {
			return c.PushDirectory(ctx, &assetpb.PushDirectoryRequest{Uris: []string{"https://x.example/a"}, DigestFunction: fn})
		}
	}
	sha, b3 := repb.DigestFunction_SHA256, repb.DigestFunction_BLAKE3
	tests := []struct {
		name, why   string
		caps        *fakeCaps // nil: no Capabilities service
		call        func(c *grpcclient.AssetClient) error
		want        codes.Code
		unsupported bool // the error is a store.UnsupportedFunctionError
		calls       int
	}{
		{"sha256 without capabilities", "SHA-256 requests are sent as they always were", nil, fetch(repb.DigestFunction_UNKNOWN), codes.OK, false, 1},
		{"blake3 without capabilities", "no Capabilities service means SHA-256 only", nil, fetch(b3), codes.NotFound, false, 0},
		{"blake3 to an empty list", "an empty digest_functions list means SHA-256 only", &fakeCaps{}, fetch(b3), codes.NotFound, false, 0},
		{"blake3 to a sha256-only remote", "a remote is asked only in functions it advertises", &fakeCaps{functions: []repb.DigestFunction_Value{sha}}, fetch(b3), codes.NotFound, false, 0},
		{"blake3 to a blake3 remote", "an advertised function is asked", &fakeCaps{functions: []repb.DigestFunction_Value{sha, b3}}, fetch(b3), codes.OK, false, 1},
		{"blake3 push to a sha256-only remote", "a push in an unadvertised function is the store's unsupported-function error, so write-back drops it", &fakeCaps{functions: []repb.DigestFunction_Value{sha}}, pushDir(b3), codes.FailedPrecondition, true, 0},
		{"blake3 push to a blake3 remote", "an advertised function is pushed", &fakeCaps{functions: []repb.DigestFunction_Value{b3}}, pushDir(b3), codes.OK, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := &fakeAssets{}
			addr := testutil.ServeGRPC(t, func(s *grpc.Server) {
				assetpb.RegisterFetchServer(s, f)
				assetpb.RegisterPushServer(s, f)
				if tc.caps != nil {
					repb.RegisterCapabilitiesServer(s, tc.caps)
				}
			})
			r := dial(t, grpcclient.Config{URL: "grpc://" + addr, Name: "idx"})
			err := tc.call(r.Assets())
			if status.Code(err) != tc.want || tc.unsupported && !store.IsUnsupportedFunction(err) {
				t.Fatalf("got %v, want %s (unsupported function: %v)", err, tc.want, tc.unsupported)
			}
			if n := len(f.seen()); n != tc.calls {
				t.Fatalf("remote saw %d asset calls, want %d", n, tc.calls)
			}
		})
	}
}
