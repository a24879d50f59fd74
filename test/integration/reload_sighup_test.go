package integration_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/internal/testutil"
)

// reloadConfig writes configYAML to l's config file, sends castd SIGHUP and
// waits for the n-th line matching done (reloads are counted, so a test
// can reload more than once).
func reloadConfig(t *testing.T, p *castdProc, l *layout, configYAML string, done *regexp.Regexp, n int) string {
	t.Helper()
	if err := os.WriteFile(l.config, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	var line string
	testutil.EventuallyWithin(t, 30*time.Second, fmt.Sprintf("reload #%d to log %q", n, done), func() bool {
		var ms []string
		for _, s := range strings.Split(p.logs.String(), "\n") {
			if done.MatchString(s) {
				ms = append(ms, s)
			}
		}
		if len(ms) >= n {
			line = ms[n-1]
			return true
		}
		return false
	})
	return line
}

var reloadedRE = regexp.MustCompile(`configuration reloaded`)

func TestReloadAddsPushRemote(t *testing.T) {
	t.Log("after editing castd.yaml and `systemctl --user reload castd` (SIGHUP), the next upload goes to the new push remote; " +
		"a connection opened before the reload keeps working, and what the write-back queue held before is still pushed")
	down, added := newPlainUpstream(t), startPlainUpstream(t)
	l := newLayout(t)
	ws, conn, ctl := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", down.serverYAML("all", true)))
	ctx := ctxFor(t, 2*time.Minute)

	queued := randomBlob(2000)
	if err := instanceWrite(ctx, conn, "", queued); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, 30*time.Second, "the upload queued for the push remote that is down", func() bool {
		return ctlStatus(t, ctl).GetQueue().GetDepth() >= 1
	})

	after := l.configYAML(fmt.Sprintf("artifacts:\n  servers:\n  - %s\n  - %s\n", down.serverYAML("all", true), added.serverYAML("all", true)))
	reloadConfig(t, ws, l, after, reloadedRE, 1)
	if ws.exitedNow() {
		t.Fatal("castd exited on SIGHUP")
	}
	if d := ctlStatus(t, ctl).GetQueue().GetDepth(); d < 1 {
		t.Errorf("write-back queue depth after the reload = %d, want the entry queued before it", d)
	}

	next := randomBlob(3000)
	if err := instanceWrite(ctx, conn, "", next); err != nil {
		t.Fatalf("upload on a connection opened before the reload: %v", err)
	}
	testutil.EventuallyWithin(t, time.Minute, "the new push remote to receive the upload", func() bool { return added.has(t, next.d) })

	down.restart(t)
	testutil.EventuallyWithin(t, time.Minute, "the entry queued before the reload to reach its remote", func() bool { return down.has(t, queued.d) })
}

func TestReloadRefusesBrokenConfig(t *testing.T) {
	t.Log("a castd.yaml with an error is refused on reload, the error is logged with file:line, and castd keeps serving the old configuration")
	up := startPlainUpstream(t)
	l := newLayout(t)
	ws, conn, ctl := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", up.serverYAML("all", true)))

	broken := l.configYAML("artifacts:\n  servers:\n  - {url: grpc://127.0.0.1:1, push: maybe}\n")
	line := reloadConfig(t, ws, l, broken, regexp.MustCompile(`configuration reload refused`), 1)
	if !strings.Contains(line, l.config+":") || !regexp.MustCompile(regexp.QuoteMeta(l.config)+`:\d+`).MatchString(line) {
		t.Errorf("the refusal does not name the file and line:\n%s", line)
	}
	if ws.exitedNow() {
		t.Fatal("castd exited on a broken reload")
	}
	st := ctlStatus(t, ctl)
	if len(st.GetRemotes()) != 1 || st.GetRemotes()[0].GetUrl() != up.url {
		t.Errorf("remotes after a refused reload = %v, want the old one only", st.GetRemotes())
	}
	b := randomBlob(1000)
	ctx := ctxFor(t, time.Minute)
	if err := instanceWrite(ctx, conn, "", b); err != nil {
		t.Fatalf("upload after a refused reload: %v", err)
	}
	testutil.EventuallyWithin(t, time.Minute, "the old push remote to receive the upload", func() bool { return up.has(t, b.d) })
}

func TestReloadAppliesQuotaAndLogLevel(t *testing.T) {
	t.Log("a reload applies cache.quota and log-level to the running castd, and warns that a changed store-dir needs a restart")
	l := newLayout(t)
	conf := func(storeDir, extra string) string {
		return fmt.Sprintf("listen:\n  - unix:%s\nstore-dir: %s\nmetrics: 127.0.0.1:0\n%s", l.socket, storeDir, extra)
	}
	p := startCastd(t, l, conf(l.store, "log-level: info\n"))
	ctl := castdpb.NewControlClient(dialUnix(t, p.socket))
	reloadConfig(t, p, l, conf(l.store+"-moved", "log-level: debug\ncache:\n  quota: 3M\n"), regexp.MustCompile(`debug logging on`), 1)
	if q := ctlStatus(t, ctl).GetStore().GetQuotaBytes(); q != 3<<20 {
		t.Errorf("quota after the reload = %d, want %d", q, 3<<20)
	}
	if _, ok := p.logs.find(regexp.MustCompile(`level=WARN.*store-dir changed but only takes effect on a restart`)); !ok {
		t.Errorf("no warning that store-dir needs a restart:\n%s", p.logs.String())
	}
}
