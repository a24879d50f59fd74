package localexec_test

import (
	"context"
	"os"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/localexec"
)

// sysrootInputs is a static busybox sysroot (Debian's busybox-static) with
// extra entries.
func sysrootInputs(t *testing.T, extra map[string]node) map[string]node {
	t.Helper()
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static: %v (apt-get install busybox-static; .ci/run does)", err)
	}
	in := map[string]node{"bin/busybox": {content: string(b), exec: true}, "bin/sh": {link: "busybox"}}
	for k, v := range extra {
		in[k] = v
	}
	return in
}

func sysrootCommand(script, wd string, outputs ...string) *repb.Command {
	return &repb.Command{Arguments: []string{"sh", "-c", script}, WorkingDirectory: wd, OutputPaths: outputs,
		EnvironmentVariables: []*repb.Command_EnvironmentVariable{{Name: "PATH", Value: "/bin"}}}
}

func TestRunSysroot(t *testing.T) {
	requireBwrap(t)
	hostNet, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	var hostIfaces string // the interface names, as the script below prints them
	for _, line := range strings.Split(string(hostNet), "\n")[2:] {
		if name, _, ok := strings.Cut(line, ":"); ok {
			hostIfaces += strings.TrimSpace(name) + "\n"
		}
	}
	const ifaces = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
	tests := []struct {
		name     string
		why      string
		inputs   map[string]node
		cmd      *repb.Command
		platform []*repb.Platform_Property
		wantCode codes.Code
		wantOut  string // stdout, when the run succeeds
		noHost   string // a host path the run must not create
	}{{
		name:    "absolute symlink in the sysroot",
		why:     "a sysroot's /bin/sh -> /bin/busybox resolves inside the sandbox, so it is staged as it is",
		inputs:  map[string]node{"usr/bin/ash": {link: "/bin/busybox"}},
		cmd:     sysrootCommand("/usr/bin/ash -c 'echo ok'", ""),
		wantOut: "ok\n",
	}, {
		name:    "output climbing to the root",
		why:     "BuildStream asks for the whole root as ../.. from its working directory",
		cmd:     sysrootCommand("echo ok", "a/b", "../.."),
		wantOut: "ok\n",
	}, {
		name:     "output leaving the root",
		why:      "an output path above the input root would be collected from the host",
		cmd:      sysrootCommand("true", "a", "../.."),
		wantCode: codes.InvalidArgument,
	}, {
		name:     "working directory through a symlink",
		why:      "the working directory is created on the host, where a symlink would lead out of the tree",
		inputs:   map[string]node{"w": {link: "/"}},
		cmd:      sysrootCommand("true", "w/castd-test-sub"),
		wantCode: codes.InvalidArgument,
		noHost:   "/castd-test-sub",
	}, {
		name:     "output parent through a symlink",
		why:      "the output's parent directory is created on the host before the run, where the link leads out of the tree",
		inputs:   map[string]node{"o": {link: "/"}},
		cmd:      sysrootCommand("true", "", "o/castd-test-out/file"),
		wantCode: codes.InvalidArgument,
		noHost:   "/castd-test-out",
	}, {
		name:     "output reached through a symlink the command made",
		why:      "collecting out/passwd through out -> /etc would read the host's /etc",
		cmd:      sysrootCommand("rmdir out && ln -s /etc out", "", "out/passwd"),
		wantCode: codes.InvalidArgument,
	}, {
		name:     "network on",
		why:      "platform network=on (BuildStream's network-enabled sandboxes) keeps the host's network",
		cmd:      sysrootCommand(ifaces, ""),
		platform: []*repb.Platform_Property{{Name: "network", Value: "on"}},
		wantOut:  hostIfaces,
	}, {
		name:    "network off by default",
		why:     "otherwise there is only loopback",
		cmd:     sysrootCommand(ifaces, ""),
		wantOut: "lo\n",
	}, {
		name:     "bad unixUID",
		why:      "a user name where an id is expected is the client's error",
		cmd:      sysrootCommand("true", ""),
		platform: []*repb.Platform_Property{{Name: "unixUID", Value: "builder"}},
		wantCode: codes.InvalidArgument,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newFixture(t, localexec.Options{Sandbox: "bwrap"})
			a := f.action(t, sysrootInputs(t, tc.inputs), tc.cmd, 0)
			a.Platform = &repb.Platform{Properties: tc.platform}
			res, err := f.runner.RunSysroot(context.Background(), a, localexec.Sysroot{})
			if tc.noHost != "" && exists(tc.noHost) {
				os.Remove(tc.noHost)
				t.Errorf("the run created %s on the host", tc.noHost)
			}
			if status.Code(err) != tc.wantCode {
				t.Fatalf("RunSysroot = %v, want %v", err, tc.wantCode)
			}
			if err == nil {
				if got := string(f.blob(t, res.GetStdoutDigest())); got != tc.wantOut || res.GetExitCode() != 0 {
					t.Errorf("stdout %q exit %d, want %q; stderr %q", got, res.GetExitCode(), tc.wantOut, f.blob(t, res.GetStderrDigest()))
				}
			}
			f.assertWorkDirEmpty(t)
		})
	}
}

func TestRunSysrootNeedsBwrap(t *testing.T) {
	t.Log("without bubblewrap the input root cannot be /: refuse rather than run on the host")
	f := newFixture(t, localexec.Options{})
	a := f.action(t, nil, sysrootCommand("true", ""), 0)
	_, err := f.runner.RunSysroot(context.Background(), a, localexec.Sysroot{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "bwrap") {
		t.Fatalf("RunSysroot = %v, want FAILED_PRECONDITION naming bwrap", err)
	}
}
