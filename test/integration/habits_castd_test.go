package integration_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/testutil"
)

// buildStreamSettings are the parts of a BuildStream 2 user configuration
// that configure BuildStream itself.
const buildStreamSettings = `cachedir: ~/.cache/buildstream
logdir: ~/.cache/buildstream/logs
scheduler: {fetchers: 10, builders: 4, on-error: quit}
build: {max-jobs: 0, dependencies: none}
logging: {verbose: true, error-lines: 40}
projects:
  freedesktop-sdk:
    strict: false
    options: {target_arch: x86_64}
    default-mirror: kernel.org
`

func TestHabitsCastdServesBuildStreamConf(t *testing.T) {
	t.Log("castd --config buildstream.conf starts, and both config checks list BuildStream's own settings as unused")
	up := startPlainUpstream(t)
	l := newLayout(t)
	cfg := l.configYAML(buildStreamSettings + "artifacts:\n  servers:\n  - " + up.serverYAML("all", false) + "\n")
	p := startCastd(t, l, cfg)

	out, err := exec.Command(castdBin, "config", "check", "--config", l.config).CombinedOutput()
	if err != nil {
		t.Fatalf("castd config check: %v\n%s", err, out)
	}
	for _, k := range []string{"cachedir", "scheduler", "projects.freedesktop-sdk.strict", "projects.freedesktop-sdk.default-mirror"} {
		if !strings.Contains(string(out), ": "+k+": BuildStream setting, not used by castd") {
			t.Errorf("castd config check does not list %s:\n%s", k, out)
		}
	}
	if !strings.Contains(string(out), up.url) {
		t.Errorf("castd config check does not use the remote section:\n%s", out)
	}

	var rep struct {
		BuildStreamSettings []struct {
			Key     string `json:"key"`
			Message string `json:"message"`
		} `json:"buildstream_settings"`
	}
	decodeJSON(t, mustBst(t, p.socket, "", "config", "check", "--json").stdout, &rep)
	if len(rep.BuildStreamSettings) != 8 || rep.BuildStreamSettings[0].Message != "BuildStream setting, not used by castd" {
		t.Errorf("the daemon's report lists %+v, want the 8 BuildStream settings", rep.BuildStreamSettings)
	}
}

func TestHabitsLocalScenarioPushesResultsToIndexRemotes(t *testing.T) {
	t.Log("README, scenario table: in the local scenario an action's result also goes to push-enabled index-role remotes")
	up := startPlainUpstream(t)
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML("artifacts:\n  servers:\n  - "+up.serverYAML("all", true)+"\n"))
	r := mustBst(t, p.socket, t.TempDir(), "run", "--", "sh", "-c", "echo pushed-result")
	if !strings.Contains(r.stderr, "local execution") {
		t.Fatalf("the action did not run locally: %q", r.stderr)
	}
	m := regexp.MustCompile(`action ([0-9a-f]{64})/(\d+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no action digest in %q", r.stderr)
	}
	size, _ := strconv.ParseInt(m[2], 10, 64)
	ac := repb.NewActionCacheClient(up.conn(t))
	var res *repb.ActionResult
	testutil.EventuallyWithin(t, 30*time.Second, "the action result on the index remote", func() bool {
		var err error
		res, err = ac.GetActionResult(ctxFor(t, 5*time.Second), &repb.GetActionResultRequest{ActionDigest: &repb.Digest{Hash: m[1], SizeBytes: size}})
		return err == nil
	})
	if res.GetExitCode() != 0 {
		t.Errorf("pushed result has exit code %d", res.GetExitCode())
	}
}
