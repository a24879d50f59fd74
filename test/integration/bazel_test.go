package integration_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bazelTimeout bounds one Bazel command; the first one starts the server
// (a JVM) on shared CI cores.
const bazelTimeout = 5 * time.Minute

// bazel is one Bazel server (its own output root) building a private copy
// of testdata/bazel-workspace.
type bazel struct {
	t    *testing.T
	bin  string
	ws   string // the workspace copy
	root string // --output_user_root
}

// newBazel finds Debian's Bazel and copies the test workspace. The server
// it starts is shut down and its files removed when t ends.
func newBazel(t *testing.T) *bazel {
	t.Helper()
	bin, err := exec.LookPath("bazel")
	if err != nil {
		t.Fatalf("bazel not found in PATH (apt-get install -y bazel-bootstrap): %v", err)
	}
	base, err := os.MkdirTemp("", "castd-bazel")
	if err != nil {
		t.Fatal(err)
	}
	// Bazel leaves read-only directories behind; make them writable first.
	t.Cleanup(func() { removeAllWritable(base) })
	b := &bazel{t: t, bin: bin, ws: filepath.Join(base, "ws"), root: filepath.Join(base, "root")}
	if err := os.CopyFS(b.ws, os.DirFS("testdata/bazel-workspace")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.shutdown) // runs before the removal above
	return b
}

// removeAllWritable removes dir even where Bazel made it read-only.
func removeAllWritable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// run runs `bazel <command> args...` in the workspace and returns its
// combined output; a failure fails the test with that output.
func (b *bazel) run(t *testing.T, command string, args ...string) string {
	t.Helper()
	out, err := b.exec(command, args...)
	if err != nil {
		t.Fatalf("bazel %s %s: %v\n%s", command, strings.Join(args, " "), err, out)
	}
	return out
}

func (b *bazel) exec(command string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bazelTimeout)
	defer cancel()
	// --nohome_rc and --noworkspace_rc keep the developer's settings out;
	// Debian's system bazelrc must stay (it names the install base).
	// --max_idle_secs is a safety net should shutdown never run.
	startup := []string{"--output_user_root=" + b.root, "--nohome_rc", "--noworkspace_rc", "--max_idle_secs=600"}
	cmd := exec.CommandContext(ctx, b.bin, append(append(startup, command), args...)...)
	cmd.Dir = b.ws
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// shutdown stops the Bazel server, so that no JVM outlives the test.
func (b *bazel) shutdown() {
	if _, err := os.Stat(b.root); err != nil {
		return // no command ever ran, so no server
	}
	if out, err := b.exec("shutdown"); err != nil {
		b.t.Errorf("bazel shutdown: %v\n%s", err, out)
	}
}

// cleanBuild cleans and builds every target with flags, returning Bazel's
// process summary.
func (b *bazel) cleanBuild(t *testing.T, flags ...string) processSummary {
	t.Helper()
	b.run(t, "clean")
	common := []string{"--color=no", "--curses=no", "--nosandbox_debug", "--remote_timeout=120", "--noremote_local_fallback"}
	out := b.run(t, "build", append(append(common, flags...), "//...")...)
	return parseProcessSummary(t, out)
}

// processSummary is Bazel's "INFO: 7 processes: 1 internal, 6 remote."
// line as counts by kind ("internal", "remote", "remote cache hit", ...).
type processSummary map[string]int

var processLine = regexp.MustCompile(`(?m)^INFO: (\d+) process(?:es)?: (.*)\.$`)

func parseProcessSummary(t *testing.T, out string) processSummary {
	t.Helper()
	m := processLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no process summary in Bazel's output:\n%s", out)
	}
	s := processSummary{}
	total := 0
	for _, part := range strings.Split(m[2], ", ") {
		n, kind, ok := strings.Cut(part, " ")
		count, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("unreadable process summary %q", m[0])
		}
		s[kind] += count
		total += count
	}
	if want, _ := strconv.Atoi(m[1]); total != want {
		t.Fatalf("process summary %q does not add up", m[0])
	}
	return s
}

// only checks that every non-internal process was of kind and returns
// how many there were.
func (s processSummary) only(t *testing.T, kind string) int {
	t.Helper()
	for k, c := range s {
		if k != "internal" && k != kind && c > 0 {
			t.Fatalf("expected every action to be %q, got %v", kind, map[string]int(s))
		}
	}
	if s[kind] == 0 {
		t.Fatalf("expected %q actions, got %v", kind, map[string]int(s))
	}
	return s[kind]
}

// checkOutputs verifies what the workspace's targets produced in bazel-bin.
func (b *bazel) checkOutputs(t *testing.T) {
	t.Helper()
	bin := filepath.Join(b.ws, "bazel-bin")
	want := []struct {
		path, content string
		exec          bool
	}{
		{"greeting.txt", "hello from castd\n", false},
		{"shout.txt", "HELLO FROM CASTD\n", false},
		{"tool.sh", "", true}, // content checked through report.txt
		{"report.txt", "report: HELLO FROM CASTD\n", false},
		{"letters/first5.txt", "HELLO", false},
		{"letters/sub/size.txt", "17\n", false},
	}
	for _, w := range want {
		p := filepath.Join(bin, w.path)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("output %s: %v", w.path, err)
			continue
		}
		if w.content != "" && string(data) != w.content {
			t.Errorf("output %s = %q, want %q", w.path, data, w.content)
		}
		if w.exec {
			if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("output %s is not executable (%v, %v)", w.path, fi.Mode(), err)
			}
		}
	}
}

// executions sums castd_executions_total samples whose outcome is outcome.
func executions(t *testing.T, p *castdProc, outcome string) int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^castd_executions_total\{[^}]*outcome="` + regexp.QuoteMeta(outcome) + `"[^}]*\} (\S+)$`)
	n := 0.0
	for _, m := range re.FindAllStringSubmatch(scrape(t, p.metricsURL()), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("castd_executions_total value %q: %v", m[1], err)
		}
		n += v
	}
	return int(n)
}

// startTCPCastd starts a castd with its socket, a loopback grpc://
// listener on an ephemeral port (Bazel 4 cannot use unix: targets) and
// extra YAML, returning it and its HOST:PORT.
func startTCPCastd(t *testing.T, extra string) (*castdProc, string) {
	t.Helper()
	l := newLayout(t)
	cfg := fmt.Sprintf("listen:\n  - unix:%s\n  - grpc://127.0.0.1:0\nstore-dir: %s\nmetrics: 127.0.0.1:0\nlog-level: debug\n%s",
		l.socket, l.store, extra)
	p := startCastd(t, l, cfg)
	return p, p.listenAddr("grpc")
}

// scenario1Build starts a cluster castd (with clusterYAML) and a
// workstation castd sending Bazel's actions to it, runs one clean build
// through the workstation and checks every action ran on the cluster. It
// returns the workstation, its HOST:PORT and the number of actions.
func (b *bazel) scenario1Build(t *testing.T, clusterYAML string) (*castdProc, string, int) {
	t.Helper()
	cluster, clusterAddr := startTCPCastd(t, clusterYAML)
	ws, wsAddr := startTCPCastd(t, fmt.Sprintf(
		"remote-execution:\n  execution-service: {url: grpc://%[1]s}\n  storage-service: {url: grpc://%[1]s}\n", clusterAddr))
	n := b.cleanBuild(t, "--remote_executor=grpc://"+wsAddr).only(t, "remote")
	b.checkOutputs(t)
	if got := executions(t, cluster, "local"); got != n {
		t.Errorf("cluster ran %d actions, Bazel sent %d to the workstation", got, n)
	}
	if got := executions(t, ws, "remote"); got != n {
		t.Errorf("workstation forwarded %d actions, Bazel sent %d", got, n)
	}
	return ws, wsAddr, n
}

func TestBazel(t *testing.T) {
	b := newBazel(t)
	cases := []struct {
		name string
		why  string
		run  func(t *testing.T)
	}{
		{"remote cache clean rebuild is all hits",
			"a Bazel user with castd as --remote_cache gets every action back after bazel clean",
			func(t *testing.T) {
				p, addr := startTCPCastd(t, "")
				first := b.cleanBuild(t, "--spawn_strategy=local", "--remote_cache=grpc://"+addr)
				n := first.only(t, "local")
				second := b.cleanBuild(t, "--spawn_strategy=local", "--remote_cache=grpc://"+addr)
				if hits := second.only(t, "remote cache hit"); hits != n {
					t.Errorf("second build: %d remote cache hits, want all %d actions (%v)", hits, n, second)
				}
				b.checkOutputs(t)
				if got := executions(t, p, "local"); got != 0 {
					t.Errorf("castd executed %d actions although Bazel only used it as a cache", got)
				}
			}},
		{"remote executor runs actions locally inside castd",
			"castd without a remote-execution block executes Bazel's actions itself",
			func(t *testing.T) {
				p, addr := startTCPCastd(t, "")
				s := b.cleanBuild(t, "--remote_executor=grpc://"+addr)
				n := s.only(t, "remote")
				b.checkOutputs(t)
				if got := executions(t, p, "local"); got != n {
					t.Errorf("castd ran %d actions locally, Bazel sent %d", got, n)
				}
			}},
		{"scenario 1 workstation forwards to cluster",
			"a workstation castd with an execution-service sends Bazel's actions to the cluster",
			func(t *testing.T) {
				ws, _, _ := b.scenario1Build(t, "")
				if got := executions(t, ws, "local"); got != 0 {
					t.Errorf("workstation ran %d actions itself; the cluster should have", got)
				}
			}},
		{"scenario 1 bridges REAPI 2.0 to an output_paths-only cluster",
			"Bazel 4.2.3 speaks REAPI 2.0; a cluster that accepts only 2.1+ (as Buildbarn) gets output_paths Commands from castd, and Bazel's next build hits",
			func(t *testing.T) {
				_, wsAddr, n := b.scenario1Build(t, "local-execution:\n  output-paths-only: true\n")
				second := b.cleanBuild(t, "--remote_executor=grpc://"+wsAddr)
				if hits := second.only(t, "remote cache hit"); hits != n {
					t.Errorf("second build: %d remote cache hits, want all %d actions (%v)", hits, n, second)
				}
				b.checkOutputs(t)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			tc.run(t)
		})
	}
}

func TestBazelProcessSummary(t *testing.T) {
	cases := []struct {
		name, line string
		want       processSummary
	}{
		// Bazel 4 prints the kinds with their counts after the total.
		{"remote cache hits", "INFO: 7 processes: 1 internal, 6 remote cache hit.", processSummary{"internal": 1, "remote cache hit": 6}},
		// One process is spelled in the singular.
		{"single process", "INFO: 1 process: 1 remote.", processSummary{"remote": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseProcessSummary(t, "INFO: Analyzed...\n"+tc.line+"\nINFO: Build completed\n")
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
