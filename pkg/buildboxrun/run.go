package buildboxrun

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// Capabilities returns what `buildbox-run --capabilities` prints, one a
// line, in the words BuildStream 2.8 parses: the OS family and the host's
// ISA in BuildStream's canonical names (it falls back to the host when no
// ISA line is printed), the platform properties and options honoured.
func Capabilities() []string {
	caps := []string{"platform:OSFamily=linux"}
	if isa := isaNames[runtime.GOARCH]; isa != "" {
		caps = append(caps, "platform:ISA="+isa)
	}
	return append(caps, "platform:unixUID", "platform:unixGID", "bind-mount", "no-logs-capture")
}

// isaNames maps GOARCH to BuildStream's canonical architecture names
// (_platform/platform.py canonicalize_arch).
var isaNames = map[string]string{
	"amd64": "x86-64", "386": "x86-32", "arm64": "aarch64", "arm": "aarch32",
	"ppc64": "power-isa-be", "ppc64le": "power-isa-le", "riscv64": "rv64g", "loong64": "la64v100",
}

// Main is the buildbox-run command: args without the program name; it
// returns the exit code: 0 when the action ran (whatever the command's own
// exit code, which is in the ActionResult) or the capabilities were
// printed, 2 for a bad command line, 1 when the runner failed (the CAS
// unreachable, inputs missing, bubblewrap unusable, signalled). Errors go
// to stderr, as does the command's output with --no-logs-capture.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cfg.Capabilities {
		for _, c := range Capabilities() {
			fmt.Fprintln(stdout, c)
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// BuildStream forwards its SIGINT; at a terminal (bst shell) the
	// shell in the sandbox gets Ctrl-C itself and the runner must stay.
	ints := make(chan os.Signal, 1)
	signal.Notify(ints, syscall.SIGINT)
	defer signal.Stop(ints)
	go func() {
		if _, ok := <-ints; ok && !isTerminal(os.Stdin) {
			stop()
		}
	}()
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(stderr, "buildbox-run (castd):", err)
		return 1
	}
	return 0
}

// Run runs the action cfg names and writes its ActionResult file. The
// command's stdio is this process's with NoLogsCapture.
func Run(ctx context.Context, cfg Config) error {
	action := &repb.Action{}
	b, err := os.ReadFile(cfg.Action)
	if err == nil {
		err = proto.Unmarshal(b, action)
	}
	if err != nil {
		return fmt.Errorf("--action=%s: %v", cfg.Action, err)
	}
	remote, err := grpcclient.Dial(ctx, grpcclient.Config{URL: cfg.Remote, InstanceName: cfg.Instance, Name: "casd " + cfg.Remote})
	if err != nil {
		return fmt.Errorf("--remote=%s: %v", cfg.Remote, err)
	}
	defer remote.Close()
	r, err := localexec.New(remote.ClientCAS(), localexec.Options{
		Jobs: 1, Sandbox: "bwrap", WorkDir: workDir(cfg.Remote),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	sys := localexec.Sysroot{BindMounts: cfg.BindMounts}
	if cfg.NoLogsCapture {
		sys.Stdin, sys.Stdout, sys.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	res, err := r.RunSysroot(ctx, action, sys)
	if res != nil {
		if werr := writeResult(cfg.ActionResult, res); werr != nil {
			return werr
		}
	}
	return err
}

// workDir is where the input root is staged: the cache directory's tmp/
// when the casd socket is in the cache directory with one beside it (as
// BuildStream arranges: its sysroots may be large, and /tmp is often
// memory), else a directory of this user's under the system's temporary
// directory.
func workDir(remote string) string {
	if sock, ok := strings.CutPrefix(remote, "unix:"); ok {
		tmp := filepath.Join(filepath.Dir(strings.TrimPrefix(sock, "//")), "tmp")
		if fi, err := os.Stat(tmp); err == nil && fi.IsDir() {
			return tmp
		}
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("castd-buildbox-run-%d", os.Getuid()))
}

// writeResult writes res into the file BuildStream created and holds open
// (so in place, not by rename).
func writeResult(name string, res *repb.ActionResult) error {
	b, err := proto.Marshal(res)
	if err == nil {
		err = os.WriteFile(name, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("--action-result=%s: %v", name, err)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
