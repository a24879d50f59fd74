package localexec

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/grpcerr"
)

// defaultPath is where an unqualified arguments[0] is looked up when the
// action sets no PATH; it is what execvp (and so bwrap) uses too.
const defaultPath = "/bin:/usr/bin"

// procOutcome is how a command ended.
type procOutcome struct {
	exitCode int32
	timedOut bool
	canceled bool
}

// job is one command ready to start: arguments, exact environment, and the
// staged root and working directory (absolute paths).
type job struct {
	args           []string
	env            []string
	root, wd       string
	stdout, stderr *os.File
	// stdoutObs and stderrObs, optional, see the output as it is written.
	stdoutObs, stderrObs io.Writer
	// sys, when set, makes root the sandbox's / (see sysroot.go).
	sys *sysrootJob
}

func commandEnv(cmd *repb.Command) []string {
	env := make([]string, 0, len(cmd.GetEnvironmentVariables())) // never nil: nil would inherit castd's
	for _, v := range cmd.GetEnvironmentVariables() {
		env = append(env, v.GetName()+"="+v.GetValue())
	}
	return env
}

// command builds the exec.Cmd for j, wrapped in bwrap when the runner
// sandboxes. The command runs in its own process group so that a timeout or
// a cancellation kills everything it started. Its output goes to the
// capture files, through tees when j has observers.
func (r *Runner) command(ctx context.Context, j *job, tees *teeSet) (*exec.Cmd, error) {
	path, args := r.bwrap, j.args
	switch {
	case j.sys != nil:
		args = append(j.sys.bwrapArgs(r.bwrap, j), j.args...)
	case r.bwrap != "":
		args = append(bwrapArgs(r.bwrap, j), j.args...)
	default:
		var err error
		if path, err = resolveArg0(j); err != nil {
			return nil, err
		}
	}
	c := exec.CommandContext(ctx, path)
	c.Args, c.Env, c.Dir = args, j.env, j.wd
	stdout, err := tees.attach(j.stdout, j.stdoutObs)
	if err != nil {
		return nil, err
	}
	stderr, err := tees.attach(j.stderr, j.stderrObs)
	if err != nil {
		return nil, err
	}
	c.Stdout, c.Stderr = stdout, stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return killGroup(c.Process.Pid) }
	if j.sys != nil {
		j.sys.adjust(c)
	}
	return c, nil
}

// bwrapArgs isolates the command: no network, the host read-only, only the
// staged root writable, a private /tmp, and nothing surviving bwrap.
func bwrapArgs(bwrap string, j *job) []string {
	return []string{bwrap,
		"--unshare-net", "--unshare-pid", "--die-with-parent",
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
		"--bind", j.root, j.root, "--chdir", j.wd, "--"}
}

// resolveArg0 finds an unqualified arguments[0] in the action's own PATH
// (relative entries are relative to the working directory), not castd's.
func resolveArg0(j *job) (string, error) {
	arg0 := j.args[0]
	if strings.Contains(arg0, "/") {
		return arg0, nil
	}
	search := defaultPath
	for _, kv := range j.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			search = v
		}
	}
	for _, dir := range filepath.SplitList(search) {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(j.wd, dir)
		}
		p := filepath.Join(dir, arg0)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", grpcerr.InvalidArgument("command.arguments[0]", "%q not found in the action's PATH %q", arg0, search)
}

// runJob runs j until it exits, ctx is done, or timeout (0: none) passes.
// Whatever the outcome, the process group is killed afterwards so no
// background child outlives the action.
func (r *Runner) runJob(ctx context.Context, j *job, timeout time.Duration) (procOutcome, error) {
	runCtx, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	var tees teeSet
	c, err := r.command(runCtx, j, &tees)
	if err == nil {
		if err = c.Start(); err != nil {
			err = grpcerr.InvalidArgument("command.arguments[0]", "cannot start %q: %v", j.args[0], err)
		}
	}
	if err != nil {
		_ = tees.finish()
		return procOutcome{}, err
	}
	tees.started()
	err = c.Wait()
	_ = killGroup(c.Process.Pid)
	if terr := tees.finish(); terr != nil {
		return procOutcome{}, terr
	}
	out := procOutcome{canceled: ctx.Err() != nil}
	out.timedOut = !out.canceled && errors.Is(runCtx.Err(), context.DeadlineExceeded)
	if c.ProcessState == nil {
		return out, internalf(err, "wait for %q", j.args[0])
	}
	out.exitCode = exitCode(c.ProcessState)
	return out, nil
}

// exitCode follows the shell convention 128+N for a command killed by
// signal N.
func exitCode(ps *os.ProcessState) int32 {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ps.ExitCode())
}

func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
