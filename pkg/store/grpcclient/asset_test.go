package grpcclient_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

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
