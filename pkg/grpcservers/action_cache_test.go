package grpcservers_test

import (
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/grpcservers"
)

func TestActionCache(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	action := digest.OfBytes([]byte("action"))
	good := digest.OfBytes([]byte("out")).Proto()
	bad := &repb.Digest{Hash: "nothex", SizeBytes: 3}
	tests := []struct {
		name   string
		why    string
		action *repb.Digest
		result *repb.ActionResult
		substr string
	}{
		{"bad action digest", "the key is validated", bad, &repb.ActionResult{}, "action_digest"},
		{"missing result", "an update must carry a result", action.Proto(), nil, "action_result"},
		{"bad output file digest", "the error names the entry", action.Proto(), &repb.ActionResult{OutputFiles: []*repb.OutputFile{
			{Path: "a", Digest: good}, {Path: "b", Digest: good}, {Path: "c", Digest: bad}}}, "action_result.output_files[2].digest"},
		{"missing output file digest", "an output file needs a digest", action.Proto(), &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "a"}}}, "action_result.output_files[0].digest"},
		{"bad tree digest", "output directories are checked", action.Proto(), &repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: bad}}}, "action_result.output_directories[0].tree_digest"},
		{"bad stderr digest", "optional digests are checked when set", action.Proto(), &repb.ActionResult{StderrDigest: bad}, "action_result.stderr_digest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			_, err := e.ac.UpdateActionResult(testutil.Context(t), &repb.UpdateActionResultRequest{ActionDigest: tc.action, ActionResult: tc.result})
			wantCode(t, err, codes.InvalidArgument, tc.substr)
			_, err = e.ac.GetActionResult(testutil.Context(t), &repb.GetActionResultRequest{ActionDigest: action.Proto()})
			wantCode(t, err, codes.NotFound, "")
		})
	}
	t.Run("roundtrip", func(t *testing.T) {
		// why: an update is served back unchanged, and overwrites.
		for _, code := range []int32{1, 0} {
			ar := &repb.ActionResult{ExitCode: code, OutputFiles: []*repb.OutputFile{{Path: "out", Digest: good}}, StdoutDigest: good}
			if _, err := e.ac.UpdateActionResult(testutil.Context(t), &repb.UpdateActionResultRequest{InstanceName: "main", ActionDigest: action.Proto(), ActionResult: ar}); err != nil {
				t.Fatal(err)
			}
			got, err := e.ac.GetActionResult(testutil.Context(t), &repb.GetActionResultRequest{InstanceName: "main", ActionDigest: action.Proto()})
			if err != nil || !proto.Equal(got, ar) {
				t.Fatalf("got %v, %v; want %v", got, err, ar)
			}
		}
	})
	t.Run("unknown digest function", func(t *testing.T) {
		// why: a function castd cannot verify is a client error naming the field, not a miss.
		_, err := e.ac.GetActionResult(testutil.Context(t), &repb.GetActionResultRequest{ActionDigest: action.Proto(), DigestFunction: repb.DigestFunction_VSO})
		wantCode(t, err, codes.InvalidArgument, "digest_function")
	})
	t.Run("hash of another function", func(t *testing.T) {
		// why: a SHA-256 hash under digest_function MD5 is a malformed action digest.
		_, err := e.ac.GetActionResult(testutil.Context(t), &repb.GetActionResultRequest{ActionDigest: action.Proto(), DigestFunction: repb.DigestFunction_MD5})
		wantCode(t, err, codes.InvalidArgument, "action_digest")
	})
}
