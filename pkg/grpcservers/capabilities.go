package grpcservers

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	smpb "github.com/bazelbuild/remote-apis/build/bazel/semver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/internal/nodeprops"
	"github.com/castd/castd/pkg/digest"
)

// capabilitiesServer answers GetCapabilities from Options and the
// instance's backend, so that what it says is what the other services do:
// an unknown instance is the backend's INVALID_ARGUMENT here too,
// update_enabled is whether the instance has an action cache that
// UpdateActionResult writes, and max_batch_total_size_bytes is the limit
// the batch calls enforce. The symlink strategy is DISALLOWED: castd does
// not resolve symlinks when it stages inputs for local execution, so it
// asks clients to send only relative symlinks (Bazel does by default).
type capabilitiesServer struct {
	repb.UnimplementedCapabilitiesServer
	backend Backend
	opts    Options
}

func (c *capabilitiesServer) GetCapabilities(ctx context.Context, req *repb.GetCapabilitiesRequest) (*repb.ServerCapabilities, error) {
	update, err := c.updateEnabled(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	fns := c.opts.digestFunctions().Protos()
	var nodeProps []string
	if c.opts.Execution != nil {
		nodeProps = nodeprops.Supported()
	}
	caps := &repb.ServerCapabilities{
		CacheCapabilities: &repb.CacheCapabilities{
			DigestFunctions:                 fns,
			ActionCacheUpdateCapabilities:   &repb.ActionCacheUpdateCapabilities{UpdateEnabled: update},
			MaxBatchTotalSizeBytes:          c.opts.MaxBatchTotalSizeBytes,
			SymlinkAbsolutePathStrategy:     repb.SymlinkAbsolutePathStrategy_DISALLOWED,
			SupportedCompressors:            compression.Supported(),
			SupportedBatchUpdateCompressors: compression.Supported(),
		},
		ExecutionCapabilities: &repb.ExecutionCapabilities{
			DigestFunction:  repb.DigestFunction_SHA256,
			DigestFunctions: fns,
			ExecEnabled:     c.opts.Execution != nil,
			// What output_node_properties may ask for and input nodes may
			// carry: local execution captures and applies these.
			SupportedNodeProperties: nodeProps,
		},
		LowApiVersion:  LowAPIVersion(c.opts.OutputPathsOnly),
		HighApiVersion: HighAPIVersion(),
	}
	return caps, nil
}

// updateEnabled reports whether UpdateActionResult on instance is
// accepted: whenever the instance has an action cache, since castd's own
// is writable (a read-only remote cache behind it is castd's to honour
// when it pushes, not the client's). An unknown instance is the backend's
// error, as on every other call.
func (c *capabilitiesServer) updateEnabled(ctx context.Context, instance string) (bool, error) {
	if _, err := c.backend.CAS(ctx, instance); status.Code(err) == codes.InvalidArgument {
		return false, err
	}
	_, err := c.backend.ActionCache(ctx, instance)
	if status.Code(err) == codes.InvalidArgument {
		return false, err
	}
	return err == nil, nil
}

// digestFunctions is DigestFunctions with its default applied.
func (o Options) digestFunctions() digest.FunctionSet {
	if o.DigestFunctions == 0 {
		return digest.AllFunctions
	}
	return o.DigestFunctions
}

// requestFunction resolves the digest function of a request once, at
// the edge: the one its digest_function field names or, when unset, the
// one the length of sample (the request's first hash; "" for none)
// implies, as REAPI 2.3 says (so an unnamed 64-character hash is SHA-256,
// never BLAKE3). A function castd cannot verify or that
// cache.digest-functions leaves out is INVALID_ARGUMENT naming
// digest_function. Every digest of the request is then parsed, and
// every digest computed for it, under the result.
func (o Options) requestFunction(field repb.DigestFunction_Value, sample string) (digest.Function, error) {
	return digest.Resolve(field, sample, o.digestFunctions())
}

// checkFunction is requestFunction for a function already known, the one
// a ByteStream resource name names or implies.
func (o Options) checkFunction(f digest.Function) error {
	_, err := digest.Resolve(f.Proto(), "", o.digestFunctions())
	return err
}

// LowAPIVersion is the oldest REAPI version castd serves: 2.0, which
// Debian's Bazel 4.2.3 speaks (output_files and output_directories in
// Commands, output_file_symlinks and output_directory_symlinks in results;
// localexec reads and fills both dialects), or 2.1 (output_paths) when
// outputPathsOnly.
func LowAPIVersion(outputPathsOnly bool) *smpb.SemVer {
	if outputPathsOnly {
		return &smpb.SemVer{Major: 2, Minor: 1}
	}
	return &smpb.SemVer{Major: 2, Minor: 0}
}

// HighAPIVersion is the newest REAPI version castd advertises: the newest
// the vendored github.com/bazelbuild/remote-apis defines. That module has no
// version constant; its remote_execution.proto names versions only in
// comments, and the newest named there is v2.13 ("New in v2.12 and removed
// in v2.13", "Starting in RE API v2.13, servers that set split_blob_support
// MUST implement this RPC" — castd does not set split_blob_support, so
// SplitBlob and SpliceBlob stay optional). Re-check that proto when the
// module is bumped.
func HighAPIVersion() *smpb.SemVer { return &smpb.SemVer{Major: 2, Minor: 13} }
