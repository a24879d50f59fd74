package grpcservers

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	smpb "github.com/bazelbuild/remote-apis/build/bazel/semver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/compression"
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
	sha := []repb.DigestFunction_Value{repb.DigestFunction_SHA256}
	caps := &repb.ServerCapabilities{
		CacheCapabilities: &repb.CacheCapabilities{
			DigestFunctions:                 sha,
			ActionCacheUpdateCapabilities:   &repb.ActionCacheUpdateCapabilities{UpdateEnabled: update},
			MaxBatchTotalSizeBytes:          c.opts.MaxBatchTotalSizeBytes,
			SymlinkAbsolutePathStrategy:     repb.SymlinkAbsolutePathStrategy_DISALLOWED,
			SupportedCompressors:            compression.Supported(),
			SupportedBatchUpdateCompressors: compression.Supported(),
		},
		ExecutionCapabilities: &repb.ExecutionCapabilities{
			DigestFunction:  repb.DigestFunction_SHA256,
			DigestFunctions: sha,
			ExecEnabled:     c.opts.Execution != nil,
		},
		// Bazel 4.2.3 (Debian) speaks 2.0 and uses output_files and
		// output_directories; both are still honoured up to 2.3.
		LowApiVersion:  &smpb.SemVer{Major: 2, Minor: 0},
		HighApiVersion: &smpb.SemVer{Major: 2, Minor: 3},
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

// checkDigestFunction rejects requests that name a digest function other
// than SHA-256. UNKNOWN (unset) means SHA-256, as for clients before 2.3.
func checkDigestFunction(f repb.DigestFunction_Value) error {
	if f != repb.DigestFunction_UNKNOWN && f != repb.DigestFunction_SHA256 {
		return status.Errorf(codes.InvalidArgument, "digest_function: %s is not supported, only SHA256", f)
	}
	return nil
}
