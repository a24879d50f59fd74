package integration_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// digestOf is blob b's digest in bst's HASH/SIZE form.
func digestOf(b blob) string { return fmt.Sprintf("%s/%d", b.d.GetHash(), b.d.GetSizeBytes()) }

// bstWithStdin is bst with stdin as its standard input.
func bstWithStdin(t *testing.T, socket string, stdin []byte, args ...string) bstResult {
	t.Helper()
	bin, err := bstBuild()
	if err != nil {
		t.Fatalf("building bst: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv("HOME="+t.TempDir(), "CASTD_SOCKET="+socket)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := bstResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bst %v: %v", args, err)
	}
	return r
}

func TestHabitsBst(t *testing.T) {
	t.Log("bst against a real castd: standard input, cp-like -o, plain errors, warnings about outputs and the empty environment")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	dir := t.TempDir()

	t.Run("cas put - reads standard input", func(t *testing.T) {
		t.Log("a pipe into bst cas put - is stored as one blob and printed as -")
		b := randomBlob(5000)
		r := bstWithStdin(t, p.socket, b.data, "cas", "put", "-")
		if r.code != 0 || r.stdout != digestOf(b)+"  -\n" {
			t.Fatalf("exit %d, stdout %q (want %q), stderr %q", r.code, r.stdout, digestOf(b)+"  -", r.stderr)
		}
		got := mustBst(t, p.socket, dir, "cas", "get", digestOf(b))
		if got.stdout != string(b.data) {
			t.Errorf("cas get returned %d bytes, want the %d put from standard input", len(got.stdout), len(b.data))
		}
	})
	t.Run("cas get -o into a missing directory fails like cp", func(t *testing.T) {
		t.Log("bst created /no/such/dir; cp fails and creates nothing")
		b := randomBlob(100)
		mustBst(t, p.socket, dir, "cas", "put", writeTemp(t, dir, "small", b.data))
		out := filepath.Join(dir, "no", "such", "x")
		r := bst(t, p.socket, dir, "cas", "get", digestOf(b), "-o", out)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot create "+out) {
			t.Errorf("exit %d, stderr %q; want 1 and cannot create", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "no")); !os.IsNotExist(err) {
			t.Errorf("bst created the missing directory (%v)", err)
		}
	})
	t.Run("cas ls of a file blob", func(t *testing.T) {
		t.Log("a file's digest given to cas ls is named as such, not a proto parse error")
		b := randomBlob(300)
		mustBst(t, p.socket, dir, "cas", "put", writeTemp(t, dir, "file", b.data))
		r := bst(t, p.socket, dir, "cas", "ls", digestOf(b))
		if r.code != 1 || !strings.Contains(r.stderr, digestOf(b)+" is a file blob, not a Directory") || strings.Contains(r.stderr, "proto") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("run warns about a missing output", func(t *testing.T) {
		t.Log("a declared output the action did not write gets a warning")
		r := bst(t, p.socket, dir, "run", "--output", "never-written.txt", "--", "sh", "-c", "echo ran")
		requireServed(t, r, "Execution")
		if r.code != 0 || !strings.Contains(r.stderr, "warning: the action did not produce --output never-written.txt") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("run says the environment is empty", func(t *testing.T) {
		t.Log("a command not found in the action's PATH suggests --env PATH=")
		r := bst(t, p.socket, dir, "run", "--", "no-such-tool-for-bst")
		if r.code != 1 || !strings.Contains(r.stderr, "environment is empty") || !strings.Contains(r.stderr, "--env PATH=") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// writeTemp writes data to dir/name and returns the path.
func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHabitsBstMissingBlobWithUpstream(t *testing.T) {
	t.Log("a blob neither castd nor its remote has: one plain line, not the digest four times and the remote's own words")
	up := startPlainUpstream(t)
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML("artifacts:\n  servers:\n  - "+up.serverYAML("all", false)+"\n"))
	b := randomBlob(64)
	r := bst(t, p.socket, "", "cas", "get", digestOf(b))
	if r.code != 1 {
		t.Fatalf("exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, b.d.GetHash()); n != 1 || strings.Contains(r.stderr, "no remote is configured") {
		t.Errorf("stderr names the digest %d times or quotes the remote:\n%s", n, r.stderr)
	}
	if !strings.Contains(r.stderr, "neither castd nor any of its remotes has it") {
		t.Errorf("stderr %q does not say the blob is nowhere", r.stderr)
	}
}

func TestHabitsBstCastdStopsDuringRun(t *testing.T) {
	t.Log("castd going away while bst run waits is said in plain words, not as gRPC transport text")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	bin, err := bstBuild()
	if err != nil {
		t.Fatalf("building bst: %v", err)
	}
	cmd := exec.Command(bin, "run", "--no-cache", "--", "sh", "-c", "sleep 3")
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv("HOME="+t.TempDir(), "CASTD_SOCKET="+p.socket)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var all []string
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("bst ended before the action ran:\n%s", strings.Join(all, "\n"))
			}
			all = append(all, line)
			if strings.Contains(line, "executing") {
				break wait
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("bst never said the action is executing:\n%s", strings.Join(all, "\n"))
		}
	}
	p.kill9()
	for line := range lines {
		all = append(all, line)
	}
	err = cmd.Wait()
	out := strings.Join(all, "\n")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("bst exit %v, want 1", err)
	}
	if !strings.Contains(out, "lost the connection to castd") || strings.Contains(out, "transport:") || strings.Contains(out, "desc =") {
		t.Errorf("stderr:\n%s", out)
	}
}
