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
	opts    Options
}

func (s *actionCacheServer) GetActionResult(ctx context.Context, req *repb.GetActionResultRequest) (*repb.ActionResult, error) {
	d, err := s.actionDigest(req.GetDigestFunction(), req.GetActionDigest())
	if err != nil {
		return nil, err
	}
	ac, err := s.backend.ActionCache(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	return ac.GetActionResult(ctx, d)
}

func (s *actionCacheServer) UpdateActionResult(ctx context.Context, req *repb.UpdateActionResultRequest) (*repb.ActionResult, error) {
	d, err := s.actionDigest(req.GetDigestFunction(), req.GetActionDigest())
	if err != nil {
		return nil, err
	}
	if err := validateActionResult(d.Func, req.GetActionResult()); err != nil {
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

// actionDigest resolves a request's digest function (the one field names,
// else the one the action digest's hash length implies) and parses the
// action digest under it. The result's Func is the request's function:
// the action cache keeps it with the hash, so a BLAKE3 action and a
// SHA-256 action of the same hex are two entries.
func (s *actionCacheServer) actionDigest(field repb.DigestFunction_Value, pd *repb.Digest) (digest.Digest, error) {
	fn, err := s.opts.requestFunction(field, pd.GetHash())
	if err != nil {
		return digest.Digest{}, err
	}
	d, err := digest.FromProtoIn(fn, pd)
	return d, fieldError("action_digest", err)
}

// validateActionResult checks every digest an ActionResult carries as a
// digest under fn, its action's function; the error names the field, e.g.
// "action_result.output_files[2].digest: ...". Optional digests (stdout,
// stderr, root_directory_digest) may be unset.
func validateActionResult(fn digest.Function, ar *repb.ActionResult) error {
	if ar == nil {
		return status.Error(codes.InvalidArgument, "action_result is missing")
	}
	for i, f := range ar.GetOutputFiles() {
		if err := checkDigest(fn, fmt.Sprintf("action_result.output_files[%d].digest", i), f.GetDigest(), true); err != nil {
			return err
		}
	}
	for i, dir := range ar.GetOutputDirectories() {
		field := fmt.Sprintf("action_result.output_directories[%d]", i)
		if err := checkDigest(fn, field+".tree_digest", dir.GetTreeDigest(), true); err != nil {
			return err
		}
		if err := checkDigest(fn, field+".root_directory_digest", dir.GetRootDirectoryDigest(), false); err != nil {
			return err
		}
	}
	if err := checkDigest(fn, "action_result.stdout_digest", ar.GetStdoutDigest(), false); err != nil {
		return err
	}
	return checkDigest(fn, "action_result.stderr_digest", ar.GetStderrDigest(), false)
}

// checkDigest validates an embedded digest under fn; a nil one is an
// error only when required.
func checkDigest(fn digest.Function, field string, d *repb.Digest, required bool) error {
	if d == nil && !required {
		return nil
	}
	_, err := digest.FromProtoIn(fn, d)
	return fieldError(field, err)
}
