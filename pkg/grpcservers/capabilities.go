package grpcservers

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	smpb "github.com/bazelbuild/remote-apis/build/bazel/semver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// capabilitiesServer answers GetCapabilities from Options alone. The
// symlink strategy is DISALLOWED: castd does not resolve symlinks when it
// stages inputs for local execution, so it asks clients to send only
// relative symlinks (Bazel does by default).
type capabilitiesServer struct {
	repb.UnimplementedCapabilitiesServer
	opts Options
}

func (c *capabilitiesServer) GetCapabilities(_ context.Context, req *repb.GetCapabilitiesRequest) (*repb.ServerCapabilities, error) {
	sha := []repb.DigestFunction_Value{repb.DigestFunction_SHA256}
	caps := &repb.ServerCapabilities{
		CacheCapabilities: &repb.CacheCapabilities{
			DigestFunctions:               sha,
			ActionCacheUpdateCapabilities: &repb.ActionCacheUpdateCapabilities{UpdateEnabled: c.updateEnabled(req.GetInstanceName())},
			MaxBatchTotalSizeBytes:        c.opts.MaxBatchTotalSizeBytes,
			SymlinkAbsolutePathStrategy:   repb.SymlinkAbsolutePathStrategy_DISALLOWED,
			SupportedCompressors:          []repb.Compressor_Value{repb.Compressor_IDENTITY},
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

func (c *capabilitiesServer) updateEnabled(instance string) bool {
	return c.opts.UpdateEnabled == nil || c.opts.UpdateEnabled(instance)
}

// checkDigestFunction rejects requests that name a digest function other
// than SHA-256. UNKNOWN (unset) means SHA-256, as for clients before 2.3.
func checkDigestFunction(f repb.DigestFunction_Value) error {
	if f != repb.DigestFunction_UNKNOWN && f != repb.DigestFunction_SHA256 {
		return status.Errorf(codes.InvalidArgument, "digest_function: %s is not supported, only SHA256", f)
	}
	return nil
}
