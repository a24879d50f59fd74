package grpcservers

import (
	"context"
	"fmt"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// actionCacheServer implements ActionCache over Backend.ActionCache. Whether
// every blob an answer references exists is the store's business (the
// store's ActionCache answers NOT_FOUND otherwise).
type actionCacheServer struct {
	repb.UnimplementedActionCacheServer
	backend Backend
}

func (s *actionCacheServer) GetActionResult(ctx context.Context, req *repb.GetActionResultRequest) (*repb.ActionResult, error) {
	if err := checkDigestFunction(req.GetDigestFunction()); err != nil {
		return nil, err
	}
	d, err := digest.FromProto(req.GetActionDigest())
	if err != nil {
		return nil, fieldError("action_digest", err)
	}
	ac, err := s.backend.ActionCache(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	return ac.GetActionResult(ctx, d)
}

func (s *actionCacheServer) UpdateActionResult(ctx context.Context, req *repb.UpdateActionResultRequest) (*repb.ActionResult, error) {
	if err := checkDigestFunction(req.GetDigestFunction()); err != nil {
		return nil, err
	}
	d, err := digest.FromProto(req.GetActionDigest())
	if err != nil {
		return nil, fieldError("action_digest", err)
	}
	if err := validateActionResult(req.GetActionResult()); err != nil {
		return nil, err
	}
	ac, err := s.backend.ActionCache(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if err := ac.UpdateActionResult(ctx, d, req.GetActionResult()); err != nil {
		return nil, err
	}
	return req.GetActionResult(), nil
}

// validateActionResult checks every digest an ActionResult carries; the
// error names the field, e.g. "action_result.output_files[2].digest: ...".
// Optional digests (stdout, stderr, root_directory_digest) may be unset.
func validateActionResult(ar *repb.ActionResult) error {
	if ar == nil {
		return status.Error(codes.InvalidArgument, "action_result is missing")
	}
	for i, f := range ar.GetOutputFiles() {
		if err := checkDigest(fmt.Sprintf("action_result.output_files[%d].digest", i), f.GetDigest(), true); err != nil {
			return err
		}
	}
	for i, dir := range ar.GetOutputDirectories() {
		field := fmt.Sprintf("action_result.output_directories[%d]", i)
		if err := checkDigest(field+".tree_digest", dir.GetTreeDigest(), true); err != nil {
			return err
		}
		if err := checkDigest(field+".root_directory_digest", dir.GetRootDirectoryDigest(), false); err != nil {
			return err
		}
	}
	if err := checkDigest("action_result.stdout_digest", ar.GetStdoutDigest(), false); err != nil {
		return err
	}
	return checkDigest("action_result.stderr_digest", ar.GetStderrDigest(), false)
}

// checkDigest validates an embedded digest; a nil one is an error only when
// required.
func checkDigest(field string, d *repb.Digest, required bool) error {
	if d == nil && !required {
		return nil
	}
	_, err := digest.FromProto(d)
	return fieldError(field, err)
}
