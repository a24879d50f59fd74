package localexec_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/localexec"
)

// requireBwrap skips unless bubblewrap is installed and can create the
// namespaces the sandbox uses here (user namespaces may be disabled in
// containers and CI runners).
func requireBwrap(t *testing.T) {
	t.Helper()
	path, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatal("bwrap not installed (apt-get install bubblewrap; .ci/run does)")
	}
	out, err := exec.Command(path, "--unshare-net", "--unshare-pid", "--die-with-parent",
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "/bin/true").CombinedOutput()
	if err != nil {
		t.Fatalf("bwrap cannot create its sandbox here: %v: %s", err, out)
	}
}

func TestBwrapSandbox(t *testing.T) {
	requireBwrap(t)
	outside := t.TempDir()
	tests := []struct {
		name   string
		why    string
		script string
		want   string // stdout
	}{{
		name:   "no network",
		why:    "an action must not reach the network: only the loopback device exists",
		script: `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '`,
		want:   "lo\n",
	}, {
		name:   "host file system read-only",
		why:    "an action must not modify anything outside its staged tree",
		script: `touch "$OUTSIDE/escaped" 2>/dev/null && echo wrote || echo refused`,
		want:   "refused\n",
	}, {
		name:   "staged tree writable",
		why:    "the command still writes its outputs and temporary files",
		script: `echo hi > out/file && echo ok > /tmp/scratch && cat out/file /tmp/scratch`,
		want:   "hi\nok\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newFixture(t, localexec.Options{Sandbox: "bwrap"})
			cmd := outputs(shell(tc.script, "OUTSIDE="+outside, "PATH=/usr/bin:/bin"), "out/file")
			res, err := f.runner.Run(context.Background(), f.action(t, nil, cmd, 0))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(f.blob(t, res.GetStdoutDigest())); got != tc.want || res.GetExitCode() != 0 {
				t.Errorf("stdout %q exit %d, want %q; stderr %q", got, res.GetExitCode(), tc.want, f.blob(t, res.GetStderrDigest()))
			}
			if _, err := os.Stat(filepath.Join(outside, "escaped")); err == nil {
				t.Errorf("the sandboxed action wrote outside its tree")
			}
			f.assertWorkDirEmpty(t)
		})
	}
}

func TestNewRejectsUnknownSandbox(t *testing.T) {
	t.Log("a typo in the sandbox setting must fail at start, not run actions unsandboxed")
	_, err := localexec.New(nil, localexec.Options{Sandbox: "bwarp", WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "sandbox") {
		t.Fatalf("New = %v, want an error naming the sandbox", err)
	}
}
