package localexec_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// node describes one entry of a local test tree: a file (content, exec), a
// symlink (link) or a directory (dir).
type node struct {
	content string
	exec    bool
	link    string
	dir     bool
}

// writeTree creates the entries under dir, parents first.
func writeTree(t testing.TB, dir string, entries map[string]node) {
	t.Helper()
	for p, n := range entries {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case n.dir:
			err = os.MkdirAll(full, 0o755)
		case n.link != "":
			err = os.Symlink(n.link, full)
		default:
			mode := os.FileMode(0o644)
			if n.exec {
				mode = 0o755
			}
			err = os.WriteFile(full, []byte(n.content), mode)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// fixture is a runner over an in-memory CAS with its own work directory.
type fixture struct {
	cas     *store.Memory
	runner  *localexec.Runner
	workDir string
}

func newFixture(t testing.TB, opts localexec.Options) *fixture {
	t.Helper()
	f := &fixture{cas: store.NewMemory(), workDir: t.TempDir()}
	opts.WorkDir = f.workDir
	r, err := localexec.New(f.cas, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.runner = r
	return f
}

// action uploads the input tree and cmd and returns the Action.
func (f *fixture) action(t testing.TB, inputs map[string]node, cmd *repb.Command, timeout time.Duration) *repb.Action {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, inputs)
	root, err := localexec.UploadDir(context.Background(), f.cas, dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := localexec.UploadAction(context.Background(), f.cas, cmd, root, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// blob reads d from the fixture's CAS.
func (f *fixture) blob(t testing.TB, d *repb.Digest) []byte {
	t.Helper()
	return f.blobIn(t, digest.SHA256, d)
}

// message reads d from the CAS and decodes it into m.
func (f *fixture) message(t testing.TB, d *repb.Digest, m proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(f.blob(t, d), m); err != nil {
		t.Fatal(err)
	}
}

// assertWorkDirEmpty checks that no staging directory was left behind.
func (f *fixture) assertWorkDirEmpty(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(f.workDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("work directory not empty: %v", entries)
	}
}

func shell(script string, env ...string) *repb.Command {
	cmd := &repb.Command{Arguments: []string{"/bin/sh", "-c", script}}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		cmd.EnvironmentVariables = append(cmd.EnvironmentVariables, &repb.Command_EnvironmentVariable{Name: name, Value: value})
	}
	return cmd
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// readPid reads a pid a test action wrote to a file.
func readPid(t testing.TB, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// processGone reports whether pid has exited (a zombie counts as exited:
// the container's init may not reap orphans).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}
