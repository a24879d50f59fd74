package grpcclient

import (
	"context"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// AssetClient calls one remote's Remote Asset API (Fetch and Push) over the
// remote's connection, so with its own credentials, retries and request
// timeout, behind the circuit breaker of its asset role. Every request carries the remote's
// own instance name, whatever the caller's request said. Safe for concurrent
// use; it holds no state besides the Remote.
//
// A request whose digest_function names a function other than SHA-256 is
// sent only if the remote's Capabilities list that function in
// cache_capabilities.digest_functions (an empty list, or no Capabilities
// service, means SHA-256 only); otherwise a Fetch is NOT_FOUND and a Push
// a *store.UnsupportedFunctionError, without a call. SHA-256 requests
// (digest_function SHA256 or unset) are sent as they always were.
type AssetClient struct {
	r     *Remote
	fetch assetpb.FetchClient
	push  assetpb.PushClient
}

// Assets returns the remote's Remote Asset client. It is cheap: the
// connection is shared with CAS and ActionCache.
func (r *Remote) Assets() *AssetClient {
	return &AssetClient{r: r, fetch: assetpb.NewFetchClient(r.conn), push: assetpb.NewPushClient(r.conn)}
}

// Name returns the remote's label.
func (c *AssetClient) Name() string { return c.r.name }

// FetchBlob asks the remote to resolve req. A status other than OK inside
// the response (which is how the Remote Asset API reports a failed fetch) is
// returned as the error, so NOT_FOUND is the miss here too. req is not
// modified.
func (c *AssetClient) FetchBlob(ctx context.Context, req *assetpb.FetchBlobRequest) (*assetpb.FetchBlobResponse, error) {
	if err := c.takes(ctx, req.GetDigestFunction(), false); err != nil {
		return nil, err
	}
	req = proto.Clone(req).(*assetpb.FetchBlobRequest)
	req.InstanceName = c.r.instance
	var resp *assetpb.FetchBlobResponse
	err := c.call(ctx, func() (err error) {
		resp, err = c.fetch.FetchBlob(ctx, req)
		if err == nil {
			err = inlineStatus(resp.GetStatus().GetCode(), resp.GetStatus().GetMessage())
		}
		return err
	})
	return resp, err
}

// FetchDirectory is FetchBlob for a directory tree.
func (c *AssetClient) FetchDirectory(ctx context.Context, req *assetpb.FetchDirectoryRequest) (*assetpb.FetchDirectoryResponse, error) {
	if err := c.takes(ctx, req.GetDigestFunction(), false); err != nil {
		return nil, err
	}
	req = proto.Clone(req).(*assetpb.FetchDirectoryRequest)
	req.InstanceName = c.r.instance
	var resp *assetpb.FetchDirectoryResponse
	err := c.call(ctx, func() (err error) {
		resp, err = c.fetch.FetchDirectory(ctx, req)
		if err == nil {
			err = inlineStatus(resp.GetStatus().GetCode(), resp.GetStatus().GetMessage())
		}
		return err
	})
	return resp, err
}

// PushBlob records req's association on the remote. req is not modified.
func (c *AssetClient) PushBlob(ctx context.Context, req *assetpb.PushBlobRequest) error {
	if err := c.takes(ctx, req.GetDigestFunction(), true); err != nil {
		return err
	}
	req = proto.Clone(req).(*assetpb.PushBlobRequest)
	req.InstanceName = c.r.instance
	return c.call(ctx, func() error { _, err := c.push.PushBlob(ctx, req); return err })
}

// PushDirectory records req's association on the remote. req is not
// modified.
func (c *AssetClient) PushDirectory(ctx context.Context, req *assetpb.PushDirectoryRequest) error {
	if err := c.takes(ctx, req.GetDigestFunction(), true); err != nil {
		return err
	}
	req = proto.Clone(req).(*assetpb.PushDirectoryRequest)
	req.InstanceName = c.r.instance
	return c.call(ctx, func() error { _, err := c.push.PushDirectory(ctx, req); return err })
}

// takes is nil when the remote may be sent a request in fn: SHA-256 (or
// unset) always, another function when the remote's Capabilities list it.
// Otherwise it is NOT_FOUND for a fetch and an UnsupportedFunctionError
// for a push; a Capabilities call that failed is returned.
func (c *AssetClient) takes(ctx context.Context, fn repb.DigestFunction_Value, push bool) error {
	if fn == repb.DigestFunction_UNKNOWN || fn == repb.DigestFunction_SHA256 {
		return nil
	}
	f, known := digest.FunctionFromProto(fn)
	caps, err := c.r.Capabilities(ctx)
	switch {
	case status.Code(err) == codes.Unimplemented:
		caps = nil // no Capabilities service: SHA-256 only
	case err != nil:
		return err
	}
	offered := caps.GetCacheCapabilities().GetDigestFunctions()
	if known && digest.SetFromProtos(offered).Has(f) {
		return nil
	}
	if push && known {
		return &store.UnsupportedFunctionError{Func: f, Store: label(c.r.name)}
	}
	if push {
		return status.Errorf(codes.InvalidArgument, "%s: digest function %s is unknown to castd", label(c.r.name), fn)
	}
	return status.Errorf(codes.NotFound, "%s does not take %s digests (not in its Capabilities' digest_functions)", label(c.r.name), fn)
}

// call runs fn behind the breaker and labels its error with the remote.
func (c *AssetClient) call(ctx context.Context, fn func() error) error {
	b := c.r.breakers[RoleAsset]
	if err := b.allow(); err != nil {
		return err
	}
	return wrap(c.r.name, b.doneWith(ctx, fn()))
}

// inlineStatus turns a Fetch response's status field into an error.
func inlineStatus(code int32, msg string) error {
	if codes.Code(code) == codes.OK {
		return nil
	}
	return status.Error(codes.Code(code), msg)
}
