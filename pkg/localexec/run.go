package localexec

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/castd/castd/pkg/digest"
)

// action is a validated Action with its Command.
type action struct {
	fn      digest.Function // of every digest in the Action and below it
	cmd     *repb.Command
	root    digest.Digest
	timeout time.Duration
	wd      string
	outputs []outputSpec
	sysroot *Sysroot // nil: the input root is a work tree under the host's /
	// platform is the Action's platform, else the Command's (REAPI 2.2
	// moved it to the Action; BuildStream sets both).
	platform *repb.Platform
}

// Run is RunStreaming without writers.
func (r *Runner) Run(ctx context.Context, a *repb.Action) (*repb.ActionResult, error) {
	return r.RunStreaming(ctx, a, nil, nil)
}

// RunIn is RunStreaming for an Action whose digests are of fn (the
// digest_function of the ExecuteRequest that named it): its Command, input
// root and every Directory and file below are read as digests of fn, and
// every digest of the result (output files, Trees and their Directories,
// stdout and stderr) is computed with fn. Safe for concurrent use.
func (r *Runner) RunIn(ctx context.Context, fn digest.Function, a *repb.Action, stdout, stderr io.Writer) (*repb.ActionResult, error) {
	return r.run(ctx, fn, a, stdout, stderr, nil)
}

// RunStreaming waits for a job slot, stages a's input root, runs its
// command, stores its outputs, stdout and stderr in the CAS and returns the
// result; a non-zero exit code is a result, not an error. Bad input is
// INVALID_ARGUMENT naming the field; blobs missing from the CAS are one
// FAILED_PRECONDITION listing them. On timeout it returns the partial result
// together with DEADLINE_EXCEEDED; if ctx ends it kills the command's
// process group and returns CANCELED. The staging directory is always
// removed.
//
// stdout and stderr, either may be nil, receive the command's output while
// it runs, besides the capture that becomes stdout_digest and
// stderr_digest (which stays byte for byte the same). They are written from
// one goroutine each and should not block: a slow writer holds the command
// up. A writer that fails is no longer written to; the run goes on. Every
// digest is SHA-256; see RunIn. Safe for concurrent use.
func (r *Runner) RunStreaming(ctx context.Context, a *repb.Action, stdout, stderr io.Writer) (*repb.ActionResult, error) {
	return r.run(ctx, digest.SHA256, a, stdout, stderr, nil)
}

// run is RunIn, and RunSysroot when sys is not nil.
func (r *Runner) run(ctx context.Context, fn digest.Function, a *repb.Action, stdout, stderr io.Writer, sys *Sysroot) (*repb.ActionResult, error) {
	md := &repb.ExecutedActionMetadata{Worker: r.opts.WorkerName, QueuedTimestamp: r.now()}
	r.queued.Add(1)
	err := r.sem.Acquire(ctx, 1)
	r.queued.Add(-1)
	if err != nil {
		return nil, status.FromContextError(err).Err()
	}
	defer r.sem.Release(1)
	r.running.Add(1)
	defer r.running.Add(-1)
	md.WorkerStartTimestamp = r.now()
	md.InputFetchStartTimestamp = md.WorkerStartTimestamp
	act, err := r.prepare(ctx, fn, a, sys)
	if err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(r.opts.WorkDir, "action-")
	if err != nil {
		return nil, internalf(err, "create staging directory")
	}
	defer r.removeStage(stage)
	res, err := r.execute(ctx, act, stage, md, stdout, stderr)
	if ctx.Err() != nil {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if res != nil {
		md.WorkerCompletedTimestamp = r.now()
		res.ExecutionMetadata = md
	}
	r.opts.Logger.Debug("localexec: action done", "exit", res.GetExitCode(), "err", err,
		"took", md.GetWorkerCompletedTimestamp().AsTime().Sub(md.GetWorkerStartTimestamp().AsTime()))
	return res, err
}

func (r *Runner) now() *timestamppb.Timestamp { return timestamppb.New(r.opts.Clock.Now()) }

// execute stages, runs and collects one action inside stage.
func (r *Runner) execute(ctx context.Context, a *action, stage string, md *repb.ExecutedActionMetadata, stdout, stderr io.Writer) (*repb.ActionResult, error) {
	root := filepath.Join(stage, "root")
	if err := materialize(ctx, r.cas, a.root, root, a.sysroot != nil); err != nil {
		return nil, err
	}
	j := &job{args: a.cmd.GetArguments(), env: commandEnv(a.cmd), root: root, wd: filepath.Join(root, a.wd),
		stdoutObs: stdout, stderrObs: stderr}
	if err := j.setSysroot(a); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.wd, 0o755); err != nil {
		return nil, internalf(err, "create working directory")
	}
	if err := prepareOutputs(j.wd, a.outputs); err != nil {
		return nil, err
	}
	if j.direct() {
		j.stdout, j.stderr = a.sysroot.Stdout, a.sysroot.Stderr
	} else {
		var err error
		if j.stdout, j.stderr, err = createStreams(stage); err != nil {
			return nil, err
		}
		defer j.stdout.Close()
		defer j.stderr.Close()
	}
	md.InputFetchCompletedTimestamp = r.now()
	md.ExecutionStartTimestamp = md.InputFetchCompletedTimestamp
	out, err := r.runSandboxed(ctx, j, a.timeout)
	md.ExecutionCompletedTimestamp = r.now()
	if err != nil || out.canceled {
		return nil, err
	}
	md.OutputUploadStartTimestamp = r.now()
	res, err := r.collect(ctx, a.fn, j, a.outputs)
	md.OutputUploadCompletedTimestamp = r.now()
	if err != nil {
		return nil, err
	}
	res.ExitCode = out.exitCode
	if out.timedOut {
		return res, status.Errorf(codes.DeadlineExceeded, "action timed out after %v; process group killed", a.timeout)
	}
	return res, nil
}

func createStreams(stage string) (stdout, stderr *os.File, err error) {
	stdout, err = os.Create(filepath.Join(stage, "stdout"))
	if err != nil {
		return nil, nil, internalf(err, "create stdout file")
	}
	stderr, err = os.Create(filepath.Join(stage, "stderr"))
	if err != nil {
		stdout.Close()
		return nil, nil, internalf(err, "create stderr file")
	}
	return stdout, stderr, nil
}
