package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestPlainUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, c := range []struct {
		name, why string
		args      []string
		code      int
		stderr    string
		notStderr string
	}{
		{"run without command", "the message names the command once, not after a second bst:", []string{"run"}, exitUsage, "bst run needs a command after --", "bst: bst"},
		{"typo suggests", "a mistyped command suggests the closest one", []string{"stauts"}, exitUsage, `did you mean "status"?`, ""},
		{"subcommand typo suggests", "also below a command group", []string{"cas", "lss"}, exitUsage, `did you mean "ls"?`, ""},
		{"completion unknown shell", "cobra printed help and exited 0 for an unknown shell", []string{"completion", "tcsh"}, exitUsage, `unknown shell "tcsh"`, ""},
		{"tcp socket refused", "bst talks to the local socket only; a grpc:// address is not 'castd not running'", []string{"--socket", "grpc://127.0.0.1:8980", "cas", "ls", strings.Repeat("0", 64) + "/0"}, exitUsage, "bst speaks only to a Unix socket", "not running"},
		{"unix: prefix accepted", "unix:PATH as in castd's listen setting names the same socket", []string{"--socket", "unix:" + missing, "cas", "ls", strings.Repeat("0", 64) + "/0"}, exitFailed, "no socket at " + missing, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Log(c.why)
			var out, errb bytes.Buffer
			if got := execute(c.args, &out, &errb); got != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", got, c.code, errb.String())
			}
			if !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), c.stderr)
			}
			if c.notStderr != "" && strings.Contains(errb.String(), c.notStderr) {
				t.Errorf("stderr %q contains %q", errb.String(), c.notStderr)
			}
		})
	}
}

func TestMessageLostConnection(t *testing.T) {
	// castd stopping mid-run gave gRPC's transport text; people need to
	// read that castd went away and how to start it again.
	err := status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /run/user/1000/castd/castd.sock: connect: no such file or directory"`)
	got := message(err)
	for _, want := range []string{"lost the connection to castd", "connect: no such file or directory", "systemctl --user"} {
		if !strings.Contains(got, want) {
			t.Errorf("message %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "transport:") || strings.Contains(got, "desc =") {
		t.Errorf("message %q still shows gRPC's transport text", got)
	}
	// An UNAVAILABLE castd itself sent keeps its words.
	if got := message(status.Error(codes.Unavailable, "upstream[0] cache.example.com: circuit open")); got != "unavailable: upstream[0] cache.example.com: circuit open" {
		t.Errorf("castd's own UNAVAILABLE rewritten: %q", got)
	}
	// An upstream's transport failure that castd relays is castd answering.
	relayed := `upstream[1] 127.0.0.1:19999: connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:19999: connect: connection refused"`
	if got := message(status.Error(codes.Unavailable, relayed)); strings.Contains(got, "lost the connection to castd") {
		t.Errorf("a remote's failure relayed by castd reads as castd gone: %q", got)
	}
}

func TestBlobNotFoundPlain(t *testing.T) {
	// A miss with remotes configured printed the digest four times and the
	// upstream's own words; the user needs one line.
	ctx := context.Background()
	d := digest.OfBytes([]byte("absent"))
	_, err := readBlob(ctx, store.WithGenericFastPaths(notFoundCAS{store.NewMemory()}), d)
	want := "blob " + d.String() + " not found: neither castd nor any of its remotes has it"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// notFoundCAS answers every Get like castd does for a blob its remote lacks.
type notFoundCAS struct{ store.BasicCAS }

func (notFoundCAS) Get(_ context.Context, d digest.Digest, _ int64) (io.ReadCloser, error) {
	return nil, status.Errorf(codes.NotFound, "upstream castd: blob %s: blob %s: upstream[0] grpc://up: blob %s: blob %s not found: no remote is configured", d, d, d, d)
}

func TestCASLsOfFileBlob(t *testing.T) {
	// bst cas ls of a file's digest said "proto: cannot parse invalid wire-format data".
	cas := store.NewMemory()
	d := putBlob(t, cas, []byte("plain text, not a Directory\n"))
	_, err := listTree(context.Background(), cas, d)
	if err == nil || !strings.Contains(err.Error(), d.String()+" is a file blob, not a Directory") {
		t.Errorf("listTree of a file blob: %v", err)
	}
}

func TestWriteFileMissingDirectory(t *testing.T) {
	// bst cas get -o /no/such/dir/x created the directories; cp fails.
	dir := t.TempDir()
	out := filepath.Join(dir, "no", "such", "x")
	err := writeFileAtomic(out, strings.NewReader("data"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "cannot create "+out) {
		t.Errorf("writeFileAtomic into a missing directory: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "no")); !os.IsNotExist(serr) {
		t.Errorf("a directory was created (%v)", serr)
	}
}

func TestMissingOutputs(t *testing.T) {
	// bst run --output X said nothing when the action did not write X.
	res := &repb.ActionResult{
		OutputFiles:       []*repb.OutputFile{{Path: "a.out"}},
		OutputDirectories: []*repb.OutputDirectory{{Path: "gen"}},
		OutputSymlinks:    []*repb.OutputSymlink{{Path: "link", Target: "a.out"}},
	}
	got := missingOutputs(res, []string{"a.out", "gen/", "link", "report.txt", "docs/"})
	if strings.Join(got, ",") != "report.txt,docs/" {
		t.Errorf("missingOutputs = %q, want [report.txt docs/]", got)
	}
}

func TestEnvHint(t *testing.T) {
	// The action's environment is empty; "not found" must say so and how to fix it.
	got := withEnvHint(`invalid argument: command.arguments[0]: "make" not found in the action's PATH "/bin:/usr/bin"`)
	if !strings.Contains(got, "environment is empty") || !strings.Contains(got, "--env PATH=") {
		t.Errorf("no hint in %q", got)
	}
	if got := withEnvHint("internal: disk full"); got != "internal: disk full" {
		t.Errorf("unrelated error changed: %q", got)
	}
	var out, errb bytes.Buffer
	if code := execute([]string{"run", "--help"}, &out, &errb); code != exitOK {
		t.Fatalf("run --help: exit %d", code)
	}
	if !strings.Contains(out.String(), "environment is empty by default") || !strings.Contains(out.String(), "--env PATH=") {
		t.Errorf("bst run --help does not say the environment is empty:\n%s", out.String())
	}
}

func TestCASPutStdin(t *testing.T) {
	// bst cas put - stores standard input as one blob, printed as "-".
	a := &app{stdin: strings.NewReader("from a pipe\n")}
	paths, cleanup, err := a.spoolStdin([]string{"x", "-"})
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(paths[1])
	if err != nil || string(data) != "from a pipe\n" {
		t.Fatalf("spooled %q, %v", data, err)
	}
	if paths[0] != "x" || a.displayPath(paths[1]) != "-" || a.displayPath("x") != "x" {
		t.Errorf("paths %q shown as %q", paths, a.displayPath(paths[1]))
	}
	if _, _, err := a.spoolStdin([]string{"-", "-"}); err == nil {
		t.Error("standard input accepted twice")
	}
}
