package integration_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// streamScript prints a line, waits for the file $REL (polling inside the
// action), then prints another.
const streamScript = `echo first; while [ ! -e "$REL" ]; do sleep 0.05; done; echo second`

func TestBstRunStreamsOutput(t *testing.T) {
	t.Log("bst run prints the action's output as it comes, once, and a cache hit prints it from the blobs")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	dir := t.TempDir()
	release := filepath.Join(t.TempDir(), "release")
	args := []string{"run", "--env", "REL=" + release, "--", "sh", "-c", streamScript}
	bin, err := bstBuild()
	if err != nil {
		t.Fatalf("building bst: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"run", "--no-cache"}, args[1:]...)...)
	cmd.Dir, cmd.Env = dir, cleanEnv("HOME="+t.TempDir(), "CASTD_SOCKET="+p.socket)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines, ended := newLineLog(), make(chan struct{})
	go lines.consume(stdout, func() { close(ended) })
	if _, err := lines.waitFor(regexp.MustCompile(`^first$`), ended, 60*time.Second); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-ended
	err = cmd.Wait()
	t.Run("streamed run", func(t *testing.T) {
		t.Log("the first line came before the release; the output is printed once, not again from the blobs")
		if err != nil || lines.String() != "first\nsecond" || !strings.Contains(stderr.String(), "local execution") {
			t.Errorf("exit %v, stdout %q, stderr %q", err, lines.String(), stderr.String())
		}
	})
	t.Run("cache hit", func(t *testing.T) {
		t.Log("a cached result has no streams: bst prints the stdout blob")
		r := bst(t, p.socket, dir, args...)
		if r.code != 0 || r.stdout != "first\nsecond\n" || !strings.Contains(r.stderr, "cache hit") {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}
