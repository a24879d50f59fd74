package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startTimeout bounds how long castd may take to report readiness.
const startTimeout = 30 * time.Second

// layout is the file system of one castd under test: a short base directory
// (Unix socket paths must stay under ~100 bytes), its socket, store and
// config file. Restarts reuse a layout.
type layout struct {
	base, socket, store, config string
	env                         []string // HOME and XDG_* pointed into base
}

// newLayout makes a fresh layout removed when t ends.
func newLayout(t testing.TB) *layout {
	t.Helper()
	base, err := os.MkdirTemp("", "castd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	l := &layout{
		base:   base,
		socket: filepath.Join(base, "run", "castd.sock"),
		store:  filepath.Join(base, "store"),
		config: filepath.Join(base, "castd.yaml"),
	}
	home := filepath.Join(base, "home")
	for _, d := range []string{home, filepath.Join(base, "xrun"), filepath.Join(base, "xcache"), filepath.Join(base, "xconfig")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	l.env = cleanEnv(
		"HOME="+home,
		"XDG_RUNTIME_DIR="+filepath.Join(base, "xrun"),
		"XDG_CACHE_HOME="+filepath.Join(base, "xcache"),
		"XDG_CONFIG_HOME="+filepath.Join(base, "xconfig"),
	)
	return l
}

// cleanEnv is the test's environment without anything that would make castd
// read the developer's own settings, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CASTD_") || strings.HasPrefix(k, "XDG_") || k == "HOME" ||
			k == "LISTEN_FDS" || k == "LISTEN_PID" || k == "NOTIFY_SOCKET" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// configYAML is a config for l with the socket, store, an ephemeral metrics
// port and debug logging, followed by extra YAML lines.
func (l *layout) configYAML(extra string) string {
	return fmt.Sprintf("listen:\n  - unix:%s\nstore-dir: %s\nmetrics: 127.0.0.1:0\nlog-level: debug\n%s", l.socket, l.store, extra)
}

// castdProc is one running (or exited) castd process.
type castdProc struct {
	t       testing.TB
	cmd     *exec.Cmd
	logs    *lineLog
	exited  chan struct{}
	waitErr error // valid once exited is closed
	ready   string
	socket  string
}

// startCastd writes configYAML to l.config (none when empty), starts castd
// with args, waits until it logs readiness and its socket answers a health
// check, and kills it when t ends.
func startCastd(t testing.TB, l *layout, configYAML string, args ...string) *castdProc {
	t.Helper()
	p := spawnCastd(t, l, configYAML, args...)
	line, err := p.logs.waitFor(regexp.MustCompile(`castd listening on`), p.exited, startTimeout)
	if err != nil {
		t.Fatalf("castd did not become ready: %v\n%s", err, p.logs.String())
	}
	p.ready = line
	p.socket = l.socket
	if configYAML == "" {
		p.socket = filepath.Join(l.base, "xrun", "castd", "castd.sock")
	}
	p.waitHealthy()
	return p
}

// spawnCastd starts castd without waiting for anything.
func spawnCastd(t testing.TB, l *layout, configYAML string, args ...string) *castdProc {
	t.Helper()
	if configYAML != "" {
		if err := os.WriteFile(l.config, []byte(configYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"serve", "--config", l.config}, args...)
	}
	cmd := exec.Command(castdBin, args...)
	cmd.Env = l.env
	return startProc(t, cmd)
}

// startProc starts cmd, collecting its stderr, and kills it when t ends.
func startProc(t testing.TB, cmd *exec.Cmd) *castdProc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	p := &castdProc{t: t, cmd: cmd, logs: newLineLog(), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.logs.consume(stderr, func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in castd (pid %d)", p.pid())
		}
		if t.Failed() {
			t.Logf("castd (pid %d) log:\n%s", p.pid(), p.logs.String())
		}
	})
	return p
}

// pid is the process id of castd.
func (p *castdProc) pid() int { return p.cmd.Process.Pid }

// waitHealthy polls the gRPC health service on the socket until it answers
// SERVING or the deadline passes.
func (p *castdProc) waitHealthy() {
	p.t.Helper()
	conn := dialUnix(p.t, p.socket)
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("castd health check on %s: %v (status %v)\n%s", p.socket, err, resp.GetStatus(), p.logs.String())
		}
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal).
func (p *castdProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("castd (pid %d) still running after %v\n%s", p.cmd.Process.Pid, timeout, p.logs.String())
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		p.t.Fatalf("castd wait: %v", p.waitErr)
	}
	return 0
}

// signal sends sig to the process.
func (p *castdProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *castdProc) kill9() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// metricsURL is the /metrics URL from the readiness line.
func (p *castdProc) metricsURL() string {
	p.t.Helper()
	m := regexp.MustCompile(`metrics (http://[^ ,"]+)`).FindStringSubmatch(p.ready)
	if m == nil {
		p.t.Fatalf("no metrics URL in %q", p.ready)
	}
	return m[1]
}

// listenAddr is the bound HOST:PORT of the scheme (grpc or grpcs) listener
// from the readiness line.
func (p *castdProc) listenAddr(scheme string) string {
	p.t.Helper()
	m := regexp.MustCompile(scheme + `://([0-9.:\[\]]+:\d+)`).FindStringSubmatch(p.ready)
	if m == nil {
		p.t.Fatalf("no %s listener in %q", scheme, p.ready)
	}
	return m[1]
}

// lineLog collects a process's output lines and lets tests wait for one.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

// consume reads r to its end, then calls done.
func (l *lineLog) consume(r io.Reader, done func()) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
	done()
}

// waitFor returns the first line matching re, waiting until it appears, the
// process exits (stop is closed) or timeout passes.
func (l *lineLog) waitFor(re *regexp.Regexp, stop <-chan struct{}, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if re.MatchString(line) {
				l.mu.Unlock()
				return line, nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-stop:
			// The process is gone; its last lines may still be in flight
			// only if consume has not finished, and stop closes after it has.
			if line, ok := l.find(re); ok {
				return line, nil
			}
			return "", fmt.Errorf("process exited before logging %q", re)
		case <-deadline:
			return "", fmt.Errorf("no line matching %q after %v", re, timeout)
		}
	}
}

func (l *lineLog) find(re *regexp.Regexp) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if re.MatchString(line) {
			return line, true
		}
	}
	return "", false
}

// String is everything logged so far.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// exitedNow reports whether the process has exited, without waiting.
func (p *castdProc) exitedNow() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}
