//lint:file-ignore SA1019 BuildStream 2.8 sets the Command's platform, deprecated since REAPI 2.2, besides the Action's

package integration_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
)

// busybox is the static busybox of Debian's busybox-static: a whole
// sysroot in one file.
const busybox = "/bin/busybox"

// requireSysrootSandbox fails (never skips: CI installs both) unless a
// static busybox is installed and bubblewrap can run a sysroot as /.
func requireSysrootSandbox(t *testing.T) {
	t.Helper()
	f, err := elf.Open(busybox)
	if err != nil {
		t.Fatalf("%s: %v (apt-get install busybox-static; .ci/run does)", busybox, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; the sysroot tests need busybox-static's", busybox)
		}
	}
	root := busyboxSysroot(t)
	out, err := exec.Command("bwrap", "--unshare-pid", "--unshare-net", "--die-with-parent", "--bind", root, "/",
		"--proc", "/proc", "--dev", "/dev", "--", "/bin/sh", "-c", "true").CombinedOutput()
	if err != nil {
		t.Fatalf("bwrap cannot run a sysroot sandbox here (apt-get install bubblewrap; user namespaces needed): %v: %s", err, out)
	}
}

// busyboxSysroot is a directory holding bin/busybox and bin/sh -> busybox.
func busyboxSysroot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "sysroot")
	mustWrite(t, filepath.Join(root, "bin", "busybox"), string(mustRead(t, busybox)), 0o755)
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	return root
}

// buildboxRunBin is castd under the name BuildStream runs: a buildbox-run
// link to it.
func buildboxRunBin(t *testing.T) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), "buildbox-run")
	if err := os.Symlink(castdBin, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// runFixture is a castd buildbox-casd holding a captured busybox sysroot.
type runFixture struct {
	casd *casdProc
	root *repb.Digest // the sysroot's Directory
	bin  string
}

func newRunFixture(t *testing.T) *runFixture {
	t.Helper()
	requireSysrootSandbox(t)
	p := startCasd(t, casdBin(t), filepath.Join(shortTempDir(t), "cache"))
	ct, err := p.local.CaptureTree(callCtx(t), &localcaspb.CaptureTreeRequest{Path: []string{busyboxSysroot(t)}})
	if err != nil || ct.GetResponses()[0].GetStatus().GetCode() != 0 {
		t.Fatalf("CaptureTree of the sysroot: %v %v", ct, err)
	}
	tree := readTree(t, p.cacheDir, ct.GetResponses()[0].GetTreeDigest())
	rd, _, err := digest.OfMessage(tree.GetRoot())
	if err != nil {
		t.Fatal(err)
	}
	return &runFixture{casd: p, root: rd.Proto(), bin: buildboxRunBin(t)}
}

// action stores cmd in the casd and writes the Action file BuildStream
// would, returning its path.
func (f *runFixture) action(t *testing.T, cmd *repb.Command) string {
	t.Helper()
	cd := f.put(t, cmd)
	a := &repb.Action{CommandDigest: cd, InputRootDigest: f.root, Platform: cmd.GetPlatform()}
	b, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "action")
	mustWrite(t, file, string(b), 0o600)
	return file
}

func (f *runFixture) put(t *testing.T, m proto.Message) *repb.Digest {
	t.Helper()
	d, data, err := digest.OfMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.casd.cas.BatchUpdateBlobs(callCtx(t), &repb.BatchUpdateBlobsRequest{
		Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d.Proto(), Data: data}}})
	if err != nil || res.GetResponses()[0].GetStatus().GetCode() != 0 {
		t.Fatalf("BatchUpdateBlobs: %v %v", res, err)
	}
	return d.Proto()
}

// run runs buildbox-run as BuildStream's _sandboxbuildboxrun.py does: in a
// new session, stdin /dev/null, --remote the casd socket, and returns its
// exit code, stdout, stderr and the ActionResult file's contents.
func (f *runFixture) run(t *testing.T, args ...string) (int, string, string, []byte) {
	t.Helper()
	result := filepath.Join(t.TempDir(), "result")
	mustWrite(t, result, "", 0o600) // BuildStream's named temporary file
	cmd := exec.Command(f.bin, append([]string{"--remote=unix:" + f.casd.socket, "--action-result=" + result}, args...)...)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String(), mustRead(t, result)
}

// bstCommand is a Command as BuildStream 2.8 makes one (_sandboxreapi.py):
// sh -c -e SCRIPT in buildstream/<project>/<element>, the whole root as
// the output ("../../.."), DIRECTORY_ONLY, OSFamily and ISA.
func bstCommand(script string, platform ...*repb.Platform_Property) *repb.Command {
	props := append([]*repb.Platform_Property{{Name: "ISA", Value: "x86-64"}, {Name: "OSFamily", Value: "linux"}}, platform...)
	slices.SortFunc(props, func(a, b *repb.Platform_Property) int { return strings.Compare(a.Name, b.Name) })
	return &repb.Command{
		Arguments:             []string{"sh", "-c", "-e", script},
		EnvironmentVariables:  []*repb.Command_EnvironmentVariable{{Name: "PATH", Value: "/usr/bin:/bin"}},
		WorkingDirectory:      "buildstream/proj/hello.bst",
		OutputPaths:           []string{"../../.."},
		OutputDirectoryFormat: repb.Command_DIRECTORY_ONLY,
		Platform:              &repb.Platform{Properties: props},
	}
}

// readTree reads a Tree blob from the cache directory, as BuildStream does.
func readTree(t *testing.T, cacheDir string, d *repb.Digest) *repb.Tree {
	t.Helper()
	tree := &repb.Tree{}
	if err := proto.Unmarshal(mustRead(t, objectFile(cacheDir, d)), tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

// resultRoot decodes an ActionResult file and returns its one output
// directory's Tree, after checking that BuildStream can use it: the Tree
// blob and, by the digest BuildStream computes from tree.root, the root
// Directory blob are files in the cache.
func (f *runFixture) resultRoot(t *testing.T, raw []byte) (*repb.ActionResult, *repb.Tree) {
	t.Helper()
	res := &repb.ActionResult{}
	if err := proto.Unmarshal(raw, res); err != nil {
		t.Fatalf("ActionResult file: %v", err)
	}
	if len(res.GetOutputDirectories()) != 1 || res.GetOutputDirectories()[0].GetPath() != "../../.." {
		t.Fatalf("output directories %v, want the whole root as ../../..", res.GetOutputDirectories())
	}
	tree := readTree(t, f.casd.cacheDir, res.GetOutputDirectories()[0].GetTreeDigest())
	rd, _, _ := digest.OfMessage(tree.GetRoot())
	mustRead(t, objectFile(f.casd.cacheDir, rd.Proto()))
	return res, tree
}

// treeFile returns the content of the file at p in tree, read from the
// cache directory, or fails.
func (f *runFixture) treeFile(t *testing.T, tree *repb.Tree, p string) string {
	t.Helper()
	dirs := map[string]*repb.Directory{}
	for _, c := range tree.GetChildren() {
		d, _, _ := digest.OfMessage(c)
		dirs[d.Hash] = c
	}
	dir := tree.GetRoot()
	parts := strings.Split(p, "/")
	for _, name := range parts[:len(parts)-1] {
		i := slices.IndexFunc(dir.GetDirectories(), func(n *repb.DirectoryNode) bool { return n.GetName() == name })
		if i < 0 {
			t.Fatalf("%s: no directory %q in the output", p, name)
		}
		dir = dirs[dir.GetDirectories()[i].GetDigest().GetHash()]
	}
	i := slices.IndexFunc(dir.GetFiles(), func(n *repb.FileNode) bool { return n.GetName() == path.Base(p) })
	if i < 0 {
		t.Fatalf("%s: not in the output", p)
	}
	return string(mustRead(t, objectFile(f.casd.cacheDir, dir.GetFiles()[i].GetDigest())))
}

func rootNames(tree *repb.Tree) []string {
	var names []string
	for _, d := range tree.GetRoot().GetDirectories() {
		names = append(names, d.GetName())
	}
	for _, fn := range tree.GetRoot().GetFiles() {
		names = append(names, fn.GetName())
	}
	return names
}

func TestBuildboxRunBuildStreamAction(t *testing.T) {
	// What `bst build` of a manual element asks: the sysroot is /, the
	// command's output goes straight to the element log, and the whole
	// root comes back as a Tree whose blobs BuildStream reads from disk.
	f := newRunFixture(t)
	script := `echo hi > x; ls / > /listing; echo to-stdout; echo to-stderr >&2; test ! -e /etc/passwd`
	code, stdout, stderr, raw := f.run(t, "--action="+f.action(t, bstCommand(script)), "--no-logs-capture")
	if code != 0 {
		t.Fatalf("buildbox-run exit %d, stderr %q", code, stderr)
	}
	if stdout != "to-stdout\n" || stderr != "to-stderr\n" {
		t.Errorf("stdout %q stderr %q, want the command's own output (--no-logs-capture)", stdout, stderr)
	}
	res, tree := f.resultRoot(t, raw)
	if res.GetExitCode() != 0 || res.GetStdoutDigest() != nil {
		t.Errorf("exit code %d, stdout digest %v; want 0 and none (not captured)", res.GetExitCode(), res.GetStdoutDigest())
	}
	if got := f.treeFile(t, tree, "buildstream/proj/hello.bst/x"); got != "hi\n" {
		t.Errorf("x = %q, want hi", got)
	}
	// Inside, / was the sysroot with /proc, /dev and /tmp mounted (nothing
	// of the host's); in the output those mount points are gone again.
	if got := f.treeFile(t, tree, "listing"); got != "bin\nbuildstream\ndev\nlisting\nproc\ntmp\n" {
		t.Errorf("ls / in the sandbox = %q", got)
	}
	if got := rootNames(tree); !slices.Equal(got, []string{"bin", "buildstream", "listing"}) {
		t.Errorf("output root holds %v, want bin, buildstream, listing (no mount points)", got)
	}
}

func TestBuildboxRunFailingCommand(t *testing.T) {
	// A failing build command is a result, not a runner failure: BuildStream
	// reads the exit code from the ActionResult (and keeps the failed
	// sandbox's outputs); a non-zero runner exit would be "buildbox-run failed".
	f := newRunFixture(t)
	for _, capture := range []bool{true, false} {
		args := []string{"--action=" + f.action(t, bstCommand(`echo partial > x; echo oops; exit 3`))}
		if !capture {
			args = append(args, "--no-logs-capture")
		}
		code, stdout, stderr, raw := f.run(t, args...)
		if code != 0 {
			t.Fatalf("buildbox-run exit %d, want 0; stderr %q", code, stderr)
		}
		res, tree := f.resultRoot(t, raw)
		if res.GetExitCode() != 3 {
			t.Errorf("ActionResult exit code %d, want 3", res.GetExitCode())
		}
		if got := f.treeFile(t, tree, "buildstream/proj/hello.bst/x"); got != "partial\n" {
			t.Errorf("x = %q, want the failed command's output", got)
		}
		if capture {
			// Without --no-logs-capture the output is a blob, not the runner's.
			if stdout != "" || string(mustRead(t, objectFile(f.casd.cacheDir, res.GetStdoutDigest()))) != "oops\n" {
				t.Errorf("captured: runner stdout %q, stdout blob %v; want the blob to hold oops", stdout, res.GetStdoutDigest())
			}
		} else if stdout != "oops\n" {
			t.Errorf("runner stdout %q, want oops", stdout)
		}
	}
}

func TestBuildboxRunBindMountAndUser(t *testing.T) {
	// --bind-mount shows a host path inside (BuildStream's host-files and
	// `bst shell`), and platform unixUID/unixGID set the user the command
	// runs as; the mount point made for the bind is not an output.
	f := newRunFixture(t)
	host := filepath.Join(t.TempDir(), "hostsrc")
	mustWrite(t, filepath.Join(host, "f"), "from the host\n", 0o644)
	cmd := bstCommand(`cat /mnt/src/f > y; id -u > uid; id -g > gid`,
		&repb.Platform_Property{Name: "unixUID", Value: "1234"}, &repb.Platform_Property{Name: "unixGID", Value: "5678"})
	code, _, stderr, raw := f.run(t, "--action="+f.action(t, cmd), "--no-logs-capture", "--bind-mount="+host+":/mnt/src")
	if code != 0 {
		t.Fatalf("buildbox-run exit %d, stderr %q", code, stderr)
	}
	res, tree := f.resultRoot(t, raw)
	if res.GetExitCode() != 0 {
		t.Fatalf("exit code %d, stderr %q", res.GetExitCode(), stderr)
	}
	wd := "buildstream/proj/hello.bst/"
	for file, want := range map[string]string{"y": "from the host\n", "uid": "1234\n", "gid": "5678\n"} {
		if got := f.treeFile(t, tree, wd+file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if got := rootNames(tree); slices.Contains(got, "mnt") {
		t.Errorf("output root holds %v: the bind mount point was left behind", got)
	}
	if _, err := os.Stat(filepath.Join(host, "f")); err != nil {
		t.Errorf("the host's file is gone after the run: %v", err)
	}
}

func TestBuildboxRunCapabilities(t *testing.T) {
	// BuildStream reads these lines to decide whether it can build at all
	// (OSFamily, ISA) and which options it may pass.
	requireSysrootSandbox(t)
	out, err := exec.Command(buildboxRunBin(t), "--capabilities").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, want := range []string{"platform:OSFamily=linux", "platform:unixUID", "platform:unixGID", "bind-mount", "no-logs-capture"} {
		if !slices.Contains(lines, want) {
			t.Errorf("capabilities %q lack %q", lines, want)
		}
	}
	if isa := bstHostISA(t); !slices.Contains(lines, "platform:ISA="+isa) {
		t.Errorf("capabilities %q lack platform:ISA=%s (BuildStream's name for this machine)", lines, isa)
	}
	if slices.Contains(lines, "platform:remoteApisSocketPath") {
		t.Errorf("capabilities %q claim remoteApisSocketPath, which castd does not offer", lines)
	}
}

// bstHostISA is BuildStream's canonical name of this machine's ISA from
// uname -m (_platform/platform.py), for the machines CI runs on.
func bstHostISA(t *testing.T) string {
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := strings.TrimSpace(string(out))
	if isa, ok := map[string]string{"x86_64": "x86-64", "aarch64": "aarch64", "i686": "x86-32"}[m]; ok {
		return isa
	}
	t.Fatalf("uname -m %q: add BuildStream's name for it", m)
	return ""
}

func TestBuildboxRunRefuses(t *testing.T) {
	f := newRunFixture(t)
	t.Run("unknown flag", func(t *testing.T) {
		t.Log("a flag a newer BuildStream passes is named, exit 2, not ignored")
		code, _, stderr, _ := f.run(t, "--action=/nonexistent", "--use-localcas", "--stdout-file=x")
		if code != 2 || !strings.Contains(stderr, "--use-localcas") || !strings.Contains(stderr, "--stdout-file") {
			t.Errorf("exit %d, stderr %q; want 2 naming --use-localcas and --stdout-file", code, stderr)
		}
	})
	t.Run("input root missing", func(t *testing.T) {
		t.Log("a runner that cannot stage the inputs fails (exit 1) and writes no result")
		a := &repb.Action{CommandDigest: f.put(t, bstCommand("true")), InputRootDigest: digest.OfBytes([]byte("no such directory")).Proto()}
		b, _ := proto.Marshal(a)
		file := filepath.Join(t.TempDir(), "action")
		mustWrite(t, file, string(b), 0o600)
		code, _, stderr, raw := f.run(t, "--action="+file, "--no-logs-capture")
		if code != 1 || !strings.Contains(stderr, "missing") || len(raw) != 0 {
			t.Errorf("exit %d, stderr %q, result %d bytes; want 1, the missing blob named, no result", code, stderr, len(raw))
		}
	})
}

func TestBuildboxRunSIGTERM(t *testing.T) {
	// BuildStream stops a runner with SIGTERM (then SIGKILL 15 s later) when
	// the user interrupts a build: the command must die with it, at once.
	f := newRunFixture(t)
	host := filepath.Join(t.TempDir(), "marks")
	if err := os.Mkdir(host, 0o755); err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "result")
	mustWrite(t, result, "", 0o600)
	cmd := exec.Command(f.bin, "--remote=unix:"+f.casd.socket, "--action-result="+result, "--no-logs-capture",
		"--action="+f.action(t, bstCommand(`echo $$ > /mnt/marks/started; sleep 7345; echo survived > /mnt/marks/end`)),
		"--bind-mount="+host+":/mnt/marks")
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if !testutil.Poll(30*time.Second, func() bool { return exists(filepath.Join(host, "started")) }) {
		_ = cmd.Process.Kill()
		t.Fatalf("the command did not start: %s", stderr.String())
	}
	// the check below must be able to see it
	if !testutil.Poll(30*time.Second, func() bool { return running(t, "sleep\x007345\x00") }) {
		t.Fatal("the sandboxed sleep is not visible in /proc")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("buildbox-run still running 15 s after SIGTERM (BuildStream would SIGKILL it)")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d after SIGTERM, want 1 (the runner did not complete the action); stderr %q", code, stderr.String())
	}
	// Nothing the command started is left (bwrap's PID namespace ends
	// with it): the sandboxed sleep goes, soon after.
	if !testutil.Poll(30*time.Second, func() bool { return !running(t, "sleep\x007345\x00") }) {
		t.Fatal("the sandboxed sleep survived the runner")
	}
}

// running reports whether a process with exactly this command line exists.
func running(t *testing.T, cmdline string) bool {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && string(b) == cmdline {
			return true
		}
	}
	return false
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestBuildboxRunInteractiveShell(t *testing.T) {
	// `bst shell` runs `sh -i` through buildbox-run with stdin on the
	// user's terminal (no new session then): the shell must get the
	// terminal as its controlling one, in the foreground, so it has job
	// control, and read the user's commands from it.
	f := newRunFixture(t)
	cmd := bstCommand("")
	cmd.Arguments = []string{"sh", "-i"}
	run := strings.Join([]string{f.bin, "--remote=unix:" + f.casd.socket, "--action=" + f.action(t, cmd),
		"--action-result=" + filepath.Join(t.TempDir(), "result"), "--no-logs-capture", "--bind-mount=/dev:/dev"}, " ")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// script(1) (util-linux) gives the runner a terminal, as a user's shell
	// would: the runner is its session's foreground process group.
	sc := exec.CommandContext(ctx, "script", "-qec", run, "/dev/null")
	sc.Env = cleanEnv("TERM=dumb")
	stdin, err := sc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc.Stdout, sc.Stderr = &out, &out
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if _, err := io.WriteString(stdin, "echo got-$((6*7)); exit 5\n"); err != nil {
		t.Fatal(err)
	}
	err = sc.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the shell did not finish (stopped waiting for the terminal?):\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("script/buildbox-run: %v\n%s", err, out.String())
	}
	if got := out.String(); !strings.Contains(got, "got-42") || strings.Contains(got, "job control turned off") {
		t.Errorf("terminal output %q: want the command's answer and job control on", got)
	}
}
