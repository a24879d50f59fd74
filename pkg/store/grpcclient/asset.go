package grpcclient

import (
	"context"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
)

// AssetClient calls one remote's Remote Asset API (Fetch and Push) over the
// remote's connection, so with its own credentials, retries and request
// timeout, behind the circuit breaker of its asset role. Every request carries the remote's
// own instance name, whatever the caller's request said. Safe for concurrent
// use; it holds no state besides the Remote.
//
// A request is sent only in a digest function the remote takes (see
// Remote.Functions: those its Capabilities list; SHA-256 only for an empty
// list or no Capabilities service); otherwise a Fetch is NOT_FOUND and a
// Push a *store.UnsupportedFunctionError, without a call. SHA-256 requests
// (digest_function SHA256 or unset) are sent as they always were until
// the remote's functions are known.
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

// takes is nil when the remote may be sent a request in fn (unset is
// SHA-256): the asset breaker's digest-function gate decides, as for the
// remote's CAS. A function the remote does not take is NOT_FOUND for a
// fetch and a *store.UnsupportedFunctionError for a push; a function castd
// does not know is INVALID_ARGUMENT; a failure to learn the remote's
// functions is returned.
func (c *AssetClient) takes(ctx context.Context, fn repb.DigestFunction_Value, push bool) error {
	f := digest.SHA256
	if fn != repb.DigestFunction_UNKNOWN {
		var ok bool
		if f, ok = digest.FunctionFromProto(fn); !ok {
			return status.Errorf(codes.InvalidArgument, "%s: digest function %s is unknown to castd", label(c.r.name), fn)
		}
	}
	g := gate{c.r, c.r.breakers[RoleAsset]}
	if push {
		return g.takes(ctx, f)
	}
	return g.read(ctx, f)
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
