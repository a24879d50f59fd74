package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"--help"}, exitOK, ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"unknown flag", []string{"status", "--bogus"}, exitUsage, "unknown flag"},
		{"group without subcommand", []string{"cas"}, exitUsage, "needs a subcommand"},
		{"missing argument", []string{"cas", "get"}, exitUsage, "expects one DIGEST"},
		{"bad digest", []string{"--socket", missing, "ac", "get", "zz/1"}, exitUsage, "expected 64 hex"},
		{"run without command", []string{"run"}, exitUsage, "needs a command"},
		{"castd not running", []string{"--socket", missing, "status"}, exitFailed, "systemctl --user enable --now castd.socket"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Scripts branch on the exit code: 2 for usage, 1 for failures.
			var out, errb bytes.Buffer
			if got := execute(c.args, &out, &errb); got != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", got, c.code, errb.String())
			}
			if !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), c.stderr)
			}
		})
	}
}

func TestStageInput(t *testing.T) {
	// .bstignore patterns keep build outputs and secrets out of the input root.
	src := t.TempDir()
	for p, data := range map[string]string{
		".bstignore": "*.o\nbuild/\n", "main.c": "int main(){}", "main.o": "obj",
		"build/x": "x", "lib/a.c": "a", "lib/a.o": "o",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	staged, cleanup, err := stageInput(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	for p, want := range map[string]bool{"main.c": true, "lib/a.c": true, ".bstignore": true, "main.o": false, "lib/a.o": false, "build": false} {
		t.Run(p, func(t *testing.T) {
			_, err := os.Lstat(filepath.Join(staged, p))
			if got := err == nil; got != want {
				t.Errorf("%s staged = %v, want %v", p, got, want)
			}
		})
	}
}

func TestStageInputExcludesOutputs(t *testing.T) {
	// Outputs an earlier bst run wrote back must not become inputs: the
	// action digest would change and the cache would never hit. Only the
	// exact declared paths go, anchored at the root.
	src := t.TempDir()
	for _, p := range []string{"src/gen/a", "gen/sub/tool", "result.txt", "lib/result.txt", "we*ird.txt", "weXird.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	staged, cleanup, err := stageInput(src, []string{"gen/", "result.txt", "we*ird.txt"})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	for p, want := range map[string]bool{
		"gen": false, "result.txt": false, "we*ird.txt": false,
		"src/gen/a": true, "lib/result.txt": true, "weXird.txt": true,
	} {
		t.Run(p, func(t *testing.T) {
			_, err := os.Lstat(filepath.Join(staged, p))
			if got := err == nil; got != want {
				t.Errorf("%s staged = %v, want %v", p, got, want)
			}
		})
	}
}
