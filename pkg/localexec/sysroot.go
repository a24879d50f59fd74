package localexec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
)

// Sysroot says how RunSysroot runs an action whose input root is a whole
// system image (BuildStream's sandboxes): the staged input root becomes the
// sandbox's /, with /proc, /dev and an empty /tmp as bubblewrap provides
// them and nothing of the host's file system but the bind mounts named
// here. The zero value captures stdout and stderr as RunStreaming does.
type Sysroot struct {
	// BindMounts are host paths made visible inside the sandbox, read-write,
	// mounted in order after /proc, /dev and /tmp.
	BindMounts []BindMount
	// Stdin, Stdout and Stderr, when Stdout and Stderr are set, are given to
	// the command itself: its output goes to them and is not captured (the
	// result has no stdout or stderr digest). A terminal on Stdin makes
	// the run interactive: the command stays in the caller's process group
	// and session so that a shell has job control. Nil Stdin is /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// BindMount is one host path (Source) mounted at Target inside the
// sandbox. Both are absolute.
type BindMount struct{ Source, Target string }

// RunSysroot is Run for an action whose input root is the whole sandbox:
// see Sysroot. Beyond Run's checks, the working directory and outputs may
// use ".." as long as they stay inside the input root (BuildStream asks for
// "../../.." to collect the whole root), symlinks in the input root may
// point anywhere (they resolve inside the sandbox), and the platform
// properties network=on (keep the host network), unixUID and unixGID (run
// as that user and group in a user namespace) are honoured. Mount points
// bubblewrap had to create in the staged root are removed again before the
// outputs are collected. It needs the bwrap sandbox: FAILED_PRECONDITION
// otherwise. Safe for concurrent use.
func (r *Runner) RunSysroot(ctx context.Context, a *repb.Action, sys Sysroot) (*repb.ActionResult, error) {
	if r.bwrap == "" {
		return nil, status.Error(codes.FailedPrecondition, "localexec: a sysroot action needs the bwrap sandbox")
	}
	if (sys.Stdout == nil) != (sys.Stderr == nil) {
		return nil, status.Error(codes.InvalidArgument, "localexec: Sysroot.Stdout and Stderr are given together or not at all")
	}
	for i, m := range sys.BindMounts {
		if err := checkBindMount(m); err != nil {
			return nil, grpcerr.InvalidArgument(fmt.Sprintf("bind mount %d", i), "%v", err)
		}
	}
	return r.run(ctx, digest.SHA256, a, nil, nil, &sys)
}

func checkBindMount(m BindMount) error {
	switch {
	case !filepath.IsAbs(m.Source) || !path.IsAbs(m.Target):
		return fmt.Errorf("%s:%s: source and target must be absolute paths", m.Source, m.Target)
	case path.Clean(m.Target) == "/":
		return fmt.Errorf("%s:%s: the input root is /", m.Source, m.Target)
	}
	if _, err := os.Stat(m.Source); err != nil {
		return fmt.Errorf("source: %v", err)
	}
	return nil
}

// sysrootJob is the part of a job that only sysroot runs have.
type sysrootJob struct {
	binds       []BindMount
	stdin       *os.File
	direct      bool // the command writes to the caller's files
	interactive bool // stdin is a terminal
	network     bool
	uid, gid    string // empty: the runner's own
	outputs     []outputSpec
	created     []string // mount points bwrap will create, parents first
}

// direct reports whether j's output goes to the caller's files uncaptured.
func (j *job) direct() bool { return j.sys != nil && j.sys.direct }

// setSysroot prepares j for a sysroot run of a, after staging: the
// working directory and the outputs' parents must not pass through a
// symlink (they are created on the host, where the link leads elsewhere),
// and the mount points bwrap will create are noted.
func (j *job) setSysroot(a *action) error {
	if a.sysroot == nil {
		return nil
	}
	if err := checkNoSymlinks(j.root, a.wd, true); err != nil {
		return grpcerr.InvalidArgument("command.working_directory", "%v", err)
	}
	s := &sysrootJob{binds: a.sysroot.BindMounts, stdin: a.sysroot.Stdin, direct: a.sysroot.Stdout != nil, outputs: a.outputs}
	if err := s.checkOutputs(j); err != nil {
		return err
	}
	if s.stdin != nil {
		_, err := unix.IoctlGetTermios(int(s.stdin.Fd()), unix.TCGETS)
		s.interactive = err == nil
	}
	if err := s.setPlatform(a.platform); err != nil {
		return err
	}
	targets := []string{"/proc", "/dev", "/tmp"}
	for _, m := range s.binds {
		targets = append(targets, m.Target)
	}
	for _, t := range targets {
		s.created = append(s.created, missingPrefixes(j.root, t)...)
	}
	j.sys = s
	return nil
}

// setPlatform honours the platform properties a sysroot run supports.
func (s *sysrootJob) setPlatform(p *repb.Platform) error {
	for _, prop := range p.GetProperties() {
		switch prop.GetName() {
		case "network":
			s.network = prop.GetValue() == "on"
		case "unixUID", "unixGID":
			if _, err := strconv.ParseUint(prop.GetValue(), 10, 32); err != nil {
				return grpcerr.InvalidArgument("platform."+prop.GetName(), "%q is not a numeric id", prop.GetValue())
			}
			if prop.GetName() == "unixUID" {
				s.uid = prop.GetValue()
			} else {
				s.gid = prop.GetValue()
			}
		}
	}
	return nil
}

// bwrapArgs makes root the sandbox's /: a private PID namespace, no network
// unless asked for, the bind mounts, and a new session unless the run is
// interactive (a shell needs the terminal's session for job control).
func (s *sysrootJob) bwrapArgs(bwrap string, j *job) []string {
	args := []string{bwrap, "--unshare-pid", "--die-with-parent"}
	if !s.network {
		args = append(args, "--unshare-net")
	}
	if s.uid != "" || s.gid != "" {
		args = append(args, "--unshare-user")
		if s.uid != "" {
			args = append(args, "--uid", s.uid)
		}
		if s.gid != "" {
			args = append(args, "--gid", s.gid)
		}
	}
	if !s.interactive {
		args = append(args, "--new-session")
	}
	args = append(args, "--bind", j.root, "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp")
	for _, m := range s.binds {
		args = append(args, "--bind", m.Source, m.Target)
	}
	rel, _ := filepath.Rel(j.root, j.wd)
	return append(args, "--chdir", path.Join("/", filepath.ToSlash(rel)), "--")
}

// adjust gives the command the caller's stdin and, when interactive, leaves
// it in the caller's process group (the terminal's foreground group) so a
// shell can read the terminal; bwrap's --die-with-parent and PID namespace
// still end everything it started.
func (s *sysrootJob) adjust(c *exec.Cmd) {
	if s.stdin != nil {
		c.Stdin = s.stdin
	}
	if s.interactive {
		c.SysProcAttr = nil
		c.Cancel = func() error { return c.Process.Kill() }
	}
}

// runSandboxed runs j; after a sysroot run it removes the mount points
// bwrap created and checks that no output is reached through a symlink the
// command made (collecting would follow it on the host).
func (r *Runner) runSandboxed(ctx context.Context, j *job, timeout time.Duration) (procOutcome, error) {
	out, err := r.runJob(ctx, j, timeout)
	if j.sys == nil || err != nil {
		return out, err
	}
	for i := len(j.sys.created) - 1; i >= 0; i-- {
		_ = os.Remove(filepath.Join(j.root, j.sys.created[i])) // only empty ones go: the command may have used them
	}
	return out, j.sys.checkOutputs(j)
}

// checkOutputs fails when an output's parent is reached through a symlink
// in the staged root.
func (s *sysrootJob) checkOutputs(j *job) error {
	rel, _ := filepath.Rel(j.root, j.wd)
	for _, o := range s.outputs {
		if err := checkNoSymlinks(j.root, path.Join(filepath.ToSlash(rel), o.path), false); err != nil {
			return grpcerr.InvalidArgument("command.output_paths", "output %q: %v", o.path, err)
		}
	}
	return nil
}

// missingPrefixes lists the prefixes of the absolute sandbox path p that do
// not exist under root, parents first.
func missingPrefixes(root, p string) []string {
	var missing []string
	cur := ""
	for _, c := range strings.Split(strings.Trim(path.Clean(p), "/"), "/") {
		cur = path.Join(cur, c)
		if len(missing) > 0 {
			missing = append(missing, cur)
			continue
		}
		if _, err := os.Lstat(filepath.Join(root, cur)); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, cur)
		}
	}
	return missing
}

// checkNoSymlinks fails when an existing component of rel (relative to
// root, already checked to stay inside it) is a symlink; the last one too
// when includeLast.
func checkNoSymlinks(root, rel string, includeLast bool) error {
	parts := strings.Split(path.Clean(rel), "/")
	if !includeLast {
		parts = parts[:len(parts)-1]
	}
	cur := ""
	for _, c := range parts {
		if c == "." || c == "" {
			continue
		}
		cur = path.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(root, cur))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%q is a symlink in the input root", cur)
		}
	}
	return nil
}

// sysrootOutputSpecs is outputSpecs for a sysroot: a path may climb out of
// the working directory wd with ".." but must stay inside the input root.
func sysrootOutputSpecs(cmd *repb.Command, wd string) ([]outputSpec, error) {
	return checkedOutputSpecs(cmd, func(field, p string, _ bool) error {
		switch in := path.Join(wd, p); {
		case path.IsAbs(p) || strings.ContainsRune(p, 0):
			return grpcerr.InvalidArgument(field, "%q must be a relative path without NUL bytes", p)
		case in == ".." || strings.HasPrefix(in, "../"):
			return grpcerr.InvalidArgument(field, "%q leaves the input root from the working directory %q", p, wd)
		}
		return nil
	})
}
