package integration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// bstBuild builds cmd/bst once, next to the castd binary TestMain built
// (so it is removed with it).
var bstBuild = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(castdBin), "bst")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/castd/castd/cmd/bst")...).CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// bstResult is one finished bst invocation.
type bstResult struct {
	stdout, stderr string
	code           int
}

// bst runs the bst binary against socket (none: $CASTD_SOCKET unset) in
// dir (none: the test's working directory) and returns what it printed and
// its exit code.
func bst(t *testing.T, socket, dir string, args ...string) bstResult {
	t.Helper()
	bin, err := bstBuild()
	if err != nil {
		t.Fatalf("building bst: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv("HOME=" + t.TempDir())
	if socket != "" {
		cmd.Env = append(cmd.Env, "CASTD_SOCKET="+socket)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := bstResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("bst %v: %v", args, err)
	}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("the race detector found a data race in bst %v:\n%s", args, r.stderr)
	}
	return r
}

// mustBst is bst that fails the test unless the exit code is 0.
func mustBst(t *testing.T, socket, dir string, args ...string) bstResult {
	t.Helper()
	r := bst(t, socket, dir, args...)
	if r.code != 0 {
		t.Fatalf("bst %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// requireServed fails t when castd answered UNIMPLEMENTED: every service
// bst uses (Control, Execution, Remote Asset) must be registered.
func requireServed(t *testing.T, r bstResult, service string) {
	t.Helper()
	if r.code != 0 && strings.Contains(r.stderr, "unimplemented") {
		t.Fatalf("castd does not serve %s: %s", service, strings.TrimSpace(r.stderr))
	}
}

// decodeJSON unmarshals s into v or fails the test.
func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("bad JSON %v:\n%s", err, s)
	}
}

func TestBstUsageAndErrors(t *testing.T) {
	t.Log("scripts and people rely on exit codes (2 usage, 1 failure) and on messages that say what to do")
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, c := range []struct {
		name, why string
		args      []string
		code      int
		out, err  string
	}{
		{"help", "--help works without castd", []string{"--help"}, 0, "Usage:", ""},
		{"run help has an example", "every command documents itself with an example", []string{"run", "--help"}, 0, "Examples:", ""},
		{"cas get help", "subcommands have help too", []string{"cas", "get", "--help"}, 0, "Examples:", ""},
		{"bad flag", "an unknown flag is a usage error", []string{"cas", "ls", "--nope"}, 2, "", "unknown flag"},
		{"bad digest", "a malformed digest is a usage error", []string{"cas", "get", "xyz"}, 2, "", "expected HASH/SIZE"},
		{"missing args", "a missing argument is a usage error", []string{"artifact", "push", "name"}, 2, "", "expects NAME and DIR"},
		{"castd not running", "the message says how to start castd", []string{"--socket", missing, "status"}, 1, "", "make run"},
		{"not running hint names systemd", "the systemd way is offered too", []string{"--socket", missing, "cas", "ls", strings.Repeat("0", 64) + "/0"}, 1, "", "systemctl --user enable --now castd.socket"},
		{"status json when down", "--json still tells scripts castd is down", []string{"--socket", missing, "status", "--json"}, 1, `"running": false`, "not running"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Log(c.why)
			r := bst(t, "", "", c.args...)
			if r.code != c.code || !strings.Contains(r.stdout, c.out) || !strings.Contains(r.stderr, c.err) {
				t.Errorf("exit %d (want %d), stdout %q (want %q), stderr %q (want %q)", r.code, c.code, r.stdout, c.out, r.stderr, c.err)
			}
		})
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run("completion "+shell, func(t *testing.T) {
			t.Log("shell completion scripts are generated for the common shells")
			r := mustBst(t, "", "", "completion", shell)
			if !strings.Contains(r.stdout, "bst") {
				t.Errorf("completion %s output does not mention bst: %.200q", shell, r.stdout)
			}
		})
	}
}

func TestBstPermissionDenied(t *testing.T) {
	t.Log("a socket bst may not open gets its own message, not 'not running'")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	if err := os.Chmod(p.socket, 0); err != nil {
		t.Fatal(err)
	}
	var r bstResult
	if os.Geteuid() == 0 {
		// Root ignores socket permissions: run bst as nobody instead.
		r = bstAsNobody(t, p.socket, "status")
	} else {
		r = bst(t, p.socket, "", "status")
	}
	if r.code != 1 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("exit %d, stderr %q; want 1 and permission denied", r.code, r.stderr)
	}
}

// bstAsNobody runs a world-executable copy of bst as uid/gid 65534 with
// setpriv (util-linux), for permission tests under root.
func bstAsNobody(t *testing.T, socket string, args ...string) bstResult {
	t.Helper()
	bin, err := bstBuild()
	if err != nil {
		t.Fatalf("building bst: %v", err)
	}
	dir, err := os.MkdirTemp("", "bst-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	copyBin := filepath.Join(dir, "bst")
	if err := os.WriteFile(copyBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", copyBin}, args...)...)
	cmd.Env = cleanEnv("HOME="+dir, "CASTD_SOCKET="+socket)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := bstResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("setpriv bst %v: %v", args, err)
	}
	return r
}

func TestBstACGetMissing(t *testing.T) {
	t.Log("a digest castd has no result for is a failed request (exit 1) saying not found")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	r := bst(t, p.socket, "", "ac", "get", randomBlob(10).d.GetHash()+"/10")
	if r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("exit %d, stderr %q; want 1 and not found", r.code, r.stderr)
	}
}
