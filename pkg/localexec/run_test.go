//lint:file-ignore SA1019 the REAPI 2.0 output fields are deprecated but Debian's Bazel 4.2.3 still uses them

package localexec_test

import (
	"context"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		why    string
		inputs map[string]node
		cmd    *repb.Command
		check  func(t *testing.T, f *fixture, res *repb.ActionResult)
	}{{
		name:   "output files keep the executable bit",
		why:    "clients restore outputs byte for byte and mode bit for mode bit",
		inputs: map[string]node{"src/in.txt": {content: "hello"}},
		cmd:    outputs(shell(`cat src/in.txt > out/data.txt && printf '#!/bin/sh\n' > out/bin && chmod +x out/bin`), "out/bin", "out/data.txt", "never/made"),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			got := map[string]*repb.OutputFile{}
			for _, o := range res.GetOutputFiles() {
				got[o.GetPath()] = o
			}
			if len(got) != 2 || !got["out/bin"].GetIsExecutable() || got["out/data.txt"].GetIsExecutable() {
				t.Fatalf("output files = %v, want out/bin executable and out/data.txt not", res.GetOutputFiles())
			}
			if b := f.blob(t, got["out/data.txt"].GetDigest()); string(b) != "hello" {
				t.Errorf("out/data.txt = %q, want %q", b, "hello")
			}
		},
	}, {
		name: "output directory becomes a tree",
		why:  "directories are returned as one Tree blob holding every nested Directory, empty ones included",
		cmd:  outputs(shell(`mkdir -p gen/nested/deeper gen/empty && echo a > gen/a.txt && echo b > gen/nested/b.txt && ln -s a.txt gen/alink`), "gen"),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if len(res.GetOutputDirectories()) != 1 || res.GetOutputDirectories()[0].GetPath() != "gen" {
				t.Fatalf("output directories = %v, want gen", res.GetOutputDirectories())
			}
			tree := &repb.Tree{}
			f.message(t, res.GetOutputDirectories()[0].GetTreeDigest(), tree)
			want := "a.txt:a\n; alink->a.txt; empty/{}; nested/{b.txt:b\n; deeper/{}}"
			if got := describeTree(t, f, tree); got != want {
				t.Errorf("tree = %q, want %q", got, want)
			}
		},
	}, {
		name: "stdout and stderr are stored as blobs",
		why:  "clients fetch both streams by digest",
		cmd:  shell(`echo to-stdout; echo to-stderr >&2`),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if out, errOut := f.blob(t, res.GetStdoutDigest()), f.blob(t, res.GetStderrDigest()); string(out) != "to-stdout\n" || string(errOut) != "to-stderr\n" {
				t.Errorf("stdout, stderr = %q, %q", out, errOut)
			}
			if res.GetStdoutRaw() != nil || res.GetStderrRaw() != nil {
				t.Errorf("stdout or stderr inlined; clients fetch them by digest")
			}
		},
	}, {
		name: "non-zero exit is a result",
		why:  "a failing command is an answer for the client, not an RPC error",
		cmd:  shell(`echo failing >&2; exit 3`),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if res.GetExitCode() != 3 || string(f.blob(t, res.GetStderrDigest())) != "failing\n" {
				t.Errorf("exit code %d, want 3 with stderr kept", res.GetExitCode())
			}
		},
	}, {
		name: "environment is exactly the command's",
		why:  "nothing of castd's own environment may leak into an action (hermeticity)",
		cmd:  withEnv(&repb.Command{Arguments: []string{"/usr/bin/env"}}, "B=two", "A=1"),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if got := string(f.blob(t, res.GetStdoutDigest())); got != "B=two\nA=1\n" {
				t.Errorf("env printed %q, want exactly B and A", got)
			}
		},
	}, {
		name: "empty environment stays empty",
		why:  "a nil environment must not fall back to inheriting castd's (os/exec's default)",
		cmd:  &repb.Command{Arguments: []string{"/usr/bin/env"}},
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if got := string(f.blob(t, res.GetStdoutDigest())); got != "" {
				t.Errorf("env printed %q, want nothing", got)
			}
		},
	}, {
		name:   "working directory is relative to the input root",
		why:    "the command runs in working_directory and output paths are relative to it",
		inputs: map[string]node{"sub/dir/x": {content: "in-wd"}},
		cmd:    outputs(withWD(shell(`pwd; cat x > o/copy`), "sub/dir"), "o/copy"),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if pwd := string(f.blob(t, res.GetStdoutDigest())); !strings.HasSuffix(pwd, "/root/sub/dir\n") {
				t.Errorf("pwd = %q, want .../root/sub/dir", pwd)
			}
			if len(res.GetOutputFiles()) != 1 || res.GetOutputFiles()[0].GetPath() != "o/copy" || string(f.blob(t, res.GetOutputFiles()[0].GetDigest())) != "in-wd" {
				t.Errorf("output files = %v, want o/copy holding in-wd", res.GetOutputFiles())
			}
		},
	}, {
		name: "unqualified command resolves in the action's PATH",
		why:  "arguments[0] without a slash is looked up in the action's PATH, not castd's",
		inputs: map[string]node{
			"tools/hello": {content: "#!/bin/sh\necho from-tools\n", exec: true},
		},
		cmd: withEnv(&repb.Command{Arguments: []string{"hello"}}, "PATH=tools:/bin"),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if got := string(f.blob(t, res.GetStdoutDigest())); got != "from-tools\n" {
				t.Errorf("stdout = %q, want from-tools", got)
			}
		},
	}, {
		name: "REAPI 2.0 output_files and output_directories",
		why:  "Debian's Bazel 4.2.3 still sends the 2.0 fields",
		cmd: &repb.Command{
			Arguments:         []string{"/bin/sh", "-c", `echo f > a/file && mkdir -p d/e && echo g > d/e/g && ln -s file a/flink && ln -s d dlink`},
			OutputFiles:       []string{"a/file", "a/flink"},
			OutputDirectories: []string{"d", "dlink", "x/not-made"},
		},
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if got := summary(res); got != "files[a/file] dirs[d] symlinks[] filesymlinks[a/flink->file] dirsymlinks[dlink->d]" {
				t.Errorf("result = %s", got)
			}
		},
	}, {
		name: "output_paths symlinks are reported for 2.1 and 2.0 clients",
		why:  "output_symlinks is the 2.1 field; the legacy fields let 2.0 clients see them too",
		cmd:  outputs(shell(`mkdir d && touch f && ln -s f fl && ln -s d dl`), "d", "f", "fl", "dl"),
		check: func(t *testing.T, f *fixture, res *repb.ActionResult) {
			if got := summary(res); got != "files[f] dirs[d] symlinks[fl->f dl->d] filesymlinks[fl->f] dirsymlinks[dl->d]" {
				t.Errorf("result = %s", got)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newFixture(t, localexec.Options{WorkerName: "test-worker"})
			a := f.action(t, tc.inputs, tc.cmd, 0)
			res, err := f.runner.Run(context.Background(), a)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			checkMetadata(t, res.GetExecutionMetadata())
			tc.check(t, f, res)
			f.assertWorkDirEmpty(t)
		})
	}
}

// checkMetadata asserts the worker name and that the timestamps are set and
// in pipeline order.
func checkMetadata(t *testing.T, md *repb.ExecutedActionMetadata) {
	t.Helper()
	if md.GetWorker() != "test-worker" {
		t.Errorf("worker = %q", md.GetWorker())
	}
	order := []interface{ AsTime() time.Time }{
		md.GetQueuedTimestamp(), md.GetWorkerStartTimestamp(), md.GetInputFetchStartTimestamp(),
		md.GetInputFetchCompletedTimestamp(), md.GetExecutionStartTimestamp(), md.GetExecutionCompletedTimestamp(),
		md.GetOutputUploadStartTimestamp(), md.GetOutputUploadCompletedTimestamp(), md.GetWorkerCompletedTimestamp(),
	}
	for i := 1; i < len(order); i++ {
		if order[i].AsTime().Before(order[i-1].AsTime()) || order[i].AsTime().Unix() == 0 {
			t.Errorf("metadata timestamp %d out of order or unset: %v", i, md)
		}
	}
}

func outputs(cmd *repb.Command, paths ...string) *repb.Command {
	cmd.OutputPaths = paths
	return cmd
}

func withEnv(cmd *repb.Command, env ...string) *repb.Command {
	cmd.EnvironmentVariables = shell("", env...).EnvironmentVariables
	return cmd
}

func withWD(cmd *repb.Command, wd string) *repb.Command {
	cmd.WorkingDirectory = wd
	return cmd
}

// summary renders the paths of a result's outputs, for compact comparison.
func summary(res *repb.ActionResult) string {
	links := func(ls []*repb.OutputSymlink) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.GetPath()+"->"+l.GetTarget())
		}
		return strings.Join(s, " ")
	}
	var files, dirs []string
	for _, o := range res.GetOutputFiles() {
		files = append(files, o.GetPath())
	}
	for _, o := range res.GetOutputDirectories() {
		dirs = append(dirs, o.GetPath())
	}
	return "files[" + strings.Join(files, " ") + "] dirs[" + strings.Join(dirs, " ") + "] symlinks[" + links(res.GetOutputSymlinks()) +
		"] filesymlinks[" + links(res.GetOutputFileSymlinks()) + "] dirsymlinks[" + links(res.GetOutputDirectorySymlinks()) + "]"
}

// describeTree renders a Tree as "name:content; link->target; dir/{...}",
// resolving subdirectories through the Tree's children only.
func describeTree(t *testing.T, f *fixture, tree *repb.Tree) string {
	t.Helper()
	children := map[digest.Digest]*repb.Directory{}
	for _, c := range tree.GetChildren() {
		d, _, err := digest.OfMessage(c)
		if err != nil {
			t.Fatal(err)
		}
		children[d] = c
	}
	var describe func(dir *repb.Directory) string
	describe = func(dir *repb.Directory) string {
		var parts []string
		for _, fn := range dir.GetFiles() {
			parts = append(parts, fn.GetName()+":"+string(f.blob(t, fn.GetDigest())))
		}
		for _, s := range dir.GetSymlinks() {
			parts = append(parts, s.GetName()+"->"+s.GetTarget())
		}
		for _, dn := range dir.GetDirectories() {
			d, err := digest.FromProto(dn.GetDigest())
			if err != nil || children[d] == nil {
				t.Fatalf("directory %s: child %v not in the tree", dn.GetName(), dn.GetDigest())
			}
			parts = append(parts, dn.GetName()+"/{"+describe(children[d])+"}")
		}
		return strings.Join(parts, "; ")
	}
	return describe(tree.GetRoot())
}
