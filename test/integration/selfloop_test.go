package integration_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/test/faultproxy"
)

// loopDeadline is how long a read through a loop of castds may take. A
// refused loop answers at once; without the guard the read waits on
// itself until the remote's stream idle timeout (a minute) or longer.
const loopDeadline = 30 * time.Second

// configCheck runs `castd config check --config file` in l's environment
// and returns its exit code and output.
func configCheck(t *testing.T, l *layout) (int, string) {
	t.Helper()
	cmd := exec.Command(castdBin, "config", "check", "--config", l.config)
	cmd.Env = l.env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestSelfLoopRemoteIsOwnSocket(t *testing.T) {
	tests := []struct {
		name, why string
		// config returns the file's text and the error line it must print.
		config func(l *layout) (yaml, want string)
	}{
		{
			name: "listen configured",
			why:  "a remote url of unix:///PATH naming castd's own listen socket is castd asking itself",
			config: func(l *layout) (string, string) {
				return l.configYAML("artifacts:\n  servers:\n  - url: unix://" + l.socket + "\n"),
					l.config + ":8:10: artifacts.servers[0].url: remote unix://" + l.socket + " is castd's own listener listen[0] (unix:" + l.socket + ", line 2)"
			},
		},
		{
			name: "default socket",
			why:  "the BuildStream recipe's mistake: castd --config buildstream.conf whose artifacts url is castd's default socket",
			config: func(l *layout) (string, string) {
				sock := filepath.Join(l.base, "xrun", "castd", "castd.sock")
				return "store-dir: " + l.store + "\nmetrics: 127.0.0.1:0\nartifacts:\n  servers:\n  - url: unix:" + sock + "\n    push: true\n",
					l.config + ":5:10: artifacts.servers[0].url: remote unix:" + sock + " is castd's own listener unix:" + sock + " (the default listen address; listen: is not set)"
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			l := newLayout(t)
			yaml, want := tc.config(l)
			writeFile(t, l.config, []byte(yaml))
			code, out := configCheck(t, l)
			if code != 2 || !strings.Contains(out, want) {
				t.Errorf("castd config check exit %d, output:\n%s\nwant exit 2 and %q", code, out, want)
			}
			p := spawnCastd(t, l, yaml)
			if code := p.wait(exitTimeout); code != 2 || !strings.Contains(p.logs.String(), want) {
				t.Errorf("castd serve exit %d; want exit 2 with %q", code, want)
			}
		})
	}
}

func TestSelfLoopTwoDaemonsNamingEachOther(t *testing.T) {
	t.Log("two castds whose remotes are each other pass config check; a read of a blob neither has fails at once with the loop named instead of hanging")
	la, lb := newLayout(t), newLayout(t)
	remote := func(sock string) string {
		return "artifacts:\n  servers:\n  - {url: 'unix:" + sock + "', type: all, push: false}\n"
	}
	cfgA, cfgB := la.configYAML(remote(lb.socket)), lb.configYAML(remote(la.socket))
	for _, c := range []struct {
		l    *layout
		yaml string
	}{{la, cfgA}, {lb, cfgB}} {
		writeFile(t, c.l.config, []byte(c.yaml))
		if code, out := configCheck(t, c.l); code != 0 {
			t.Fatalf("castd config check exit %d (the loop through another daemon is not visible to it):\n%s", code, out)
		}
	}
	a := startCastd(t, la, cfgA)
	startCastd(t, lb, cfgB)
	conn := dialUnix(t, a.socket)
	missing := randomBlob(100).d

	tests := []struct {
		name, why string
		call      func(ctx context.Context) error
	}{
		{"ByteStream read", "bst cas get's read: the fan-out counts the looping remote as failed, not as a miss", func(ctx context.Context) error {
			_, err := readBlob(ctx, conn, missing)
			return err
		}},
		{"GetActionResult", "the action cache fan-out goes through the same remotes", func(ctx context.Context) error {
			_, err := repb.NewActionCacheClient(conn).GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: missing})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			ctx, cancel := context.WithTimeout(context.Background(), loopDeadline)
			defer cancel()
			err := tc.call(ctx)
			t.Logf("%s answered: %v", tc.name, err)
			if ctx.Err() != nil {
				t.Fatalf("%s through two castds naming each other did not return within %v: %v", tc.name, loopDeadline, err)
			}
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "a remote loops back to castd itself") {
				t.Errorf("%s = %v; want FAILED_PRECONDITION saying a remote loops back to castd", tc.name, err)
			}
		})
	}
}

func TestSelfLoopThroughSymlinkFallsToNextRemote(t *testing.T) {
	t.Log("a first remote that reaches castd's own socket through a symlink passes config check (the path differs); a read falls to the second remote with the loop named")
	up := startPlainUpstream(t)
	l := newLayout(t)
	link := filepath.Join(l.base, "alias.sock")
	if err := os.Symlink(l.socket, link); err != nil {
		t.Fatal(err)
	}
	cfg := l.configYAML("artifacts:\n  servers:\n  - {url: 'unix:" + link + "', type: storage, push: false}\n  - " + up.serverYAML("storage", false) + "\n")
	writeFile(t, l.config, []byte(cfg))
	if code, out := configCheck(t, l); code != 0 {
		t.Fatalf("castd config check exit %d:\n%s", code, out)
	}
	p := startCastd(t, l, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), loopDeadline)
	defer cancel()
	_, err := readBlob(ctx, dialUnix(t, p.socket), randomBlob(100).d)
	if ctx.Err() != nil {
		t.Fatalf("read did not return within %v: %v", loopDeadline, err)
	}
	// NOT_FOUND: the second remote was asked and answered a miss; the
	// first is named as the loop it is, not as a remote that was slow
	// (without the guard the failover delay, not the loop, moves on).
	loop := "upstream[1] " + link + ": this request has already passed through this castd"
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), loop) || !strings.Contains(err.Error(), "upstream[2] "+up.addr) {
		t.Errorf("read = %v; want NOT_FOUND with %q and the second remote's miss", err, loop)
	}
}

func TestSelfLoopThroughTCPForward(t *testing.T) {
	t.Log("a remote that is a TCP forward to castd's own listener passes config check (another port); a read of a missing blob fails at once with the loop named")
	l := newLayout(t)
	addr := freePort(t)
	fwd, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })
	cfg := fmt.Sprintf("listen:\n  - unix:%s\n  - grpc://%s\nstore-dir: %s\nmetrics: 127.0.0.1:0\n"+
		"artifacts:\n  servers:\n  - {url: 'grpc://%s', type: all, push: false}\n", l.socket, addr, l.store, fwd.Addr())
	writeFile(t, l.config, []byte(cfg))
	if code, out := configCheck(t, l); code != 0 {
		t.Fatalf("castd config check exit %d:\n%s", code, out)
	}
	p := startCastd(t, l, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), loopDeadline)
	defer cancel()
	_, err = readBlob(ctx, dialUnix(t, p.socket), randomBlob(100).d)
	if ctx.Err() != nil {
		t.Fatalf("read through a forward to castd itself did not return within %v: %v", loopDeadline, err)
	}
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "upstream[1] "+fwd.Addr()+": this request has already passed through this castd") {
		t.Errorf("read = %v; want FAILED_PRECONDITION naming the forward as a loop", err)
	}
}
