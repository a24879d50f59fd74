package localexec

import (
	"context"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// PutMessage stores the deterministic encoding of m in cas and returns its
// SHA-256 digest. Use it for Command and Action messages.
func PutMessage(ctx context.Context, cas store.CAS, m proto.Message) (digest.Digest, error) {
	return PutMessageIn(ctx, cas, digest.SHA256, m)
}

// PutMessageIn is PutMessage with m hashed with fn.
func PutMessageIn(ctx context.Context, cas store.CAS, fn digest.Function, m proto.Message) (digest.Digest, error) {
	b := newBlobSet(fn)
	d, err := b.addMessage(m)
	if err == nil {
		err = b.upload(ctx, cas)
	}
	return d, err
}

// UploadAction stores cmd and an Action running it over the input root
// inputRoot (already in cas) with the given timeout (0: none), and returns
// the Action and its digest. Command and Action are hashed with the input
// root's function (see UploadDirIn). It is the client side of Run, for
// tests and the bst client.
func UploadAction(ctx context.Context, cas store.CAS, cmd *repb.Command, inputRoot digest.Digest, timeout time.Duration) (*repb.Action, digest.Digest, error) {
	cd, err := PutMessageIn(ctx, cas, inputRoot.Func, cmd)
	if err != nil {
		return nil, digest.Digest{}, err
	}
	a := &repb.Action{CommandDigest: cd.Proto(), InputRootDigest: inputRoot.Proto()}
	if timeout > 0 {
		a.Timeout = durationpb.New(timeout)
	}
	ad, err := PutMessageIn(ctx, cas, inputRoot.Func, a)
	return a, ad, err
}

// prepare validates a, whose digests are of fn, and fetches and validates
// its Command.
func (r *Runner) prepare(ctx context.Context, fn digest.Function, a *repb.Action, sys *Sysroot) (*action, error) {
	cd, err := digest.FromProtoIn(fn, a.GetCommandDigest())
	if err != nil {
		return nil, grpcerr.InvalidArgument("action.command_digest", "%s", status.Convert(err).Message())
	}
	act := &action{fn: fn, cmd: &repb.Command{}, timeout: r.opts.DefaultTimeout, sysroot: sys}
	if act.root, err = digest.FromProtoIn(fn, a.GetInputRootDigest()); err != nil {
		return nil, grpcerr.InvalidArgument("action.input_root_digest", "%s", status.Convert(err).Message())
	}
	if t := a.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return nil, grpcerr.InvalidArgument("action.timeout", "%v is not a valid non-negative duration", t.AsDuration())
		}
		if t.AsDuration() > 0 {
			act.timeout = t.AsDuration()
		}
	}
	if err := store.ReadMessage(ctx, r.cas, cd, act.cmd); status.Code(err) == codes.NotFound {
		return nil, store.MissingBlobsError("the CAS (command)", []digest.Digest{cd})
	} else if err != nil {
		return nil, internalf(err, "command %s", cd)
	}
	if len(act.cmd.GetArguments()) == 0 || act.cmd.GetArguments()[0] == "" {
		return nil, grpcerr.InvalidArgument("command.arguments", "no command to run")
	}
	act.wd = act.cmd.GetWorkingDirectory()
	if act.platform = a.GetPlatform(); act.platform == nil {
		act.platform = act.cmd.GetPlatform() //lint:ignore SA1019 REAPI 2.0 clients set only the Command's
	}
	if err := checkRelPath("command.working_directory", act.wd, true); err != nil {
		return nil, err
	}
	if sys != nil {
		act.outputs, err = sysrootOutputSpecs(act.cmd, act.wd)
		return act, err
	}
	act.outputs, err = outputSpecs(act.cmd)
	return act, err
}

// collect stores outputs, stdout and stderr of a finished job, hashed with
// fn, and returns the result without exit code and metadata.
func (r *Runner) collect(ctx context.Context, fn digest.Function, j *job, specs []outputSpec) (*repb.ActionResult, error) {
	res := &repb.ActionResult{}
	b := newBlobSet(fn)
	if err := collectOutputs(ctx, b, j.wd, specs, res); err != nil {
		return nil, err
	}
	if j.direct() {
		return res, b.upload(ctx, r.cas) // the output went to the caller's files
	}
	stdout, err := b.addFile(j.stdout.Name())
	if err != nil {
		return nil, err
	}
	stderr, err := b.addFile(j.stderr.Name())
	if err != nil {
		return nil, err
	}
	res.StdoutDigest, res.StderrDigest = stdout.Proto(), stderr.Proto()
	return res, b.upload(ctx, r.cas)
}
