package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/castd/castd/pkg/policy"
)

func TestRunCommands(t *testing.T) {
	tests := []struct {
		name       string
		why        string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "version", why: "packagers and bug reports need the build's version", args: []string{"version"}, wantStdout: "castd dev go"},
		{name: "--version", why: "users try --version before the subcommand", args: []string{"--version"}, wantStdout: "castd dev go"},
		{name: "-v", why: "the short form too", args: []string{"-v"}, wantStdout: "castd dev go"},
		{name: "help", why: "`castd help` lists subcommands and every flag", args: []string{"help"}, wantStdout: "--store-dir"},
		{name: "serve --help", why: "flag help exits 0 without starting anything", args: []string{"serve", "--help"}, wantStdout: "castd config check"},
		{name: "unknown flag", why: "a mistyped flag is a usage error, exit 2", args: []string{"--no-such-flag"}, wantCode: exitUsage, wantStderr: "no-such-flag"},
		{name: "stray argument", why: "an unknown subcommand must not silently start the daemon", args: []string{"srve"}, wantCode: exitUsage, wantStderr: `unexpected argument "srve"`},
		{name: "casd --version", why: "`castd casd` is buildbox-casd without the link; BuildStream parses this line", args: []string{"casd", "--version", "/"}, wantStdout: "buildbox-casd 1.3.41 (castd dev)"},
		{name: "casd unknown flag", why: "a flag BuildStream may add one day is named, exit 2", args: []string{"casd", "--fuse-mount", "/c"}, wantCode: exitUsage, wantStderr: "--fuse-mount"},
		{name: "run-action --capabilities", why: "`castd run-action` is buildbox-run without the link", args: []string{"run-action", "--capabilities"}, wantStdout: "platform:OSFamily=linux\n"},
		{name: "run-action unknown flag", why: "a flag BuildStream may add one day is named, exit 2", args: []string{"run-action", "--use-localcas"}, wantCode: exitUsage, wantStderr: "--use-localcas"},
		{name: "config without check", why: "`castd config` alone says how to use it", args: []string{"config"}, wantCode: exitUsage, wantStderr: "castd config check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestDocumentedKeysAreFlags(t *testing.T) {
	// The README says every setting is also a flag named after its key;
	// these two were refused as unknown flags.
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CONFIG_HOME", dir)
	cfg := loadWithFlags(t, "--log-request-metadata", "--listen-auth.access-token", token)
	if !cfg.LogRequestMetadata {
		t.Error("--log-request-metadata did not set log-request-metadata")
	}
	if cfg.ListenAuth.AccessToken != token {
		t.Errorf("listen-auth.access-token = %q, want %q", cfg.ListenAuth.AccessToken, token)
	}
}

func TestSyncWritesReachesTheStore(t *testing.T) {
	// cache.sync-writes is the store's SyncWrites: fsync before acknowledging.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, tc := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"--cache.sync-writes"}, true}} {
		dc, err := daemonConfigFrom(loadWithFlags(t, tc.args...))
		if err != nil {
			t.Fatal(err)
		}
		if dc.storeOpts.SyncWrites != tc.want {
			t.Errorf("%v: store SyncWrites = %v, want %v", tc.args, dc.storeOpts.SyncWrites, tc.want)
		}
	}
}

func TestSyncWritesReloadNeedsRestart(t *testing.T) {
	// The store is opened once: a reload that turns cache.sync-writes on says so.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cur, err := daemonConfigFrom(loadWithFlags(t))
	if err != nil {
		t.Fatal(err)
	}
	next, err := daemonConfigFrom(loadWithFlags(t, "--cache.sync-writes"))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := &castdDaemon{cfg: cur, log: slog.New(slog.NewTextHandler(&logs, nil))}
	d.warnNotReloaded(next)
	if !strings.Contains(logs.String(), "cache.sync-writes changed but only takes effect on a restart") {
		t.Errorf("no restart warning for cache.sync-writes:\n%s", logs.String())
	}
}

func TestExplicitMetricsAddressIsStrict(t *testing.T) {
	// An address the user gives is theirs, even when it equals the
	// default: a busy port must fail start-up, not silently lose metrics.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, args := range [][]string{{"--metrics", policy.DefaultMetrics}, {"--metrics", "127.0.0.1:9"}} {
		dc, err := daemonConfigFrom(loadWithFlags(t, args...))
		if err != nil {
			t.Fatal(err)
		}
		if !dc.metricsExplicit {
			t.Errorf("%v: metrics address treated as the implicit default", args)
		}
	}
	dc, err := daemonConfigFrom(loadWithFlags(t))
	if err != nil {
		t.Fatal(err)
	}
	if dc.metricsExplicit {
		t.Error("the built-in default address is treated as explicit")
	}
}

func TestExplicitBusyMetricsAddressExits(t *testing.T) {
	// End to end through openMetrics: a busy explicit address is an error
	// naming the address, whatever the address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dc, err := daemonConfigFrom(loadWithFlags(t, "--metrics", l.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := openMetrics(dc, newRegistry(), quietLogger())
	if err == nil {
		m.Close(context.Background())
		t.Fatal("openMetrics on a busy explicit address succeeded")
	}
	if !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("error %q does not name the address", err)
	}
}

// loadWithFlags loads the configuration as castd serve does with args.
func loadWithFlags(t *testing.T, args ...string) *policy.Config {
	t.Helper()
	fs := pflag.NewFlagSet("castd serve", pflag.ContinueOnError)
	policy.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	cfg, err := policy.Load(policy.LoadOptions{Flags: fs, Env: []string{"XDG_CONFIG_HOME=" + os.Getenv("XDG_CONFIG_HOME"), "XDG_RUNTIME_DIR=" + os.Getenv("XDG_CONFIG_HOME")}})
	if err != nil {
		t.Fatalf("load %v: %v", args, err)
	}
	return cfg
}

func TestUploadLimitsReachTheServer(t *testing.T) {
	// cache.max-idle-uploads and cache.max-idle-upload-bytes (and the
	// other served-API limits) reach grpcservers.Options; unset ones stay
	// zero, the server's defaults.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dc, err := daemonConfigFrom(loadWithFlags(t, "--cache.max-idle-uploads", "7", "--cache.max-idle-upload-bytes", "1G", "--cache.upload-idle-timeout", "30s"))
	if err != nil {
		t.Fatal(err)
	}
	o := serverOptions(dc)
	if o.MaxIdleUploads != 7 || o.MaxIdleUploadBytes != 1<<30 || o.UploadIdleTimeout != 30*time.Second || o.ReadBufferLimit != 0 {
		t.Errorf("server options %+v; want 7 uploads, 1G, 30s and a zero read-buffer-limit", o)
	}
}

// writeConfig writes text as a user config file in a temp dir and
// returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "castd.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	good := writeConfig(t, "log-level: info\n")
	bad := writeConfig(t, "log-level: loud\nartifacts:\n  servers:\n    url: https://a.example.com\n")
	for _, tc := range []struct {
		name, why string
		args      []string
		code      int
		stdoutHas []string
		stderrHas []string
		quiet     bool // nothing on stdout
	}{
		{"valid text", "a valid config prints the text report and exits 0",
			[]string{"--config", good}, exitOK, []string{"scenario:"}, nil, false},
		{"valid json", "--json prints the report as JSON",
			[]string{"--config", good, "--json"}, exitOK, []string{`"valid": true`}, nil, false},
		{"invalid text", "exit 2 and every error on stderr, counted; no report",
			[]string{"--config", bad}, exitUsage, nil, []string{"castd.yaml:1:12: log-level: expected one of", "castd.yaml:4:5: artifacts.servers: expected a list, found a mapping", "2 error(s)"}, true},
		{"invalid json", "tools get the errors in the JSON too, with valid false, and the exit code",
			[]string{"--config", bad, "--json"}, exitUsage, []string{`"valid": false`, `"key": "artifacts.servers"`}, []string{"2 error(s)"}, false},
		{"bad usage", "an unknown flag is a usage error with the same exit code",
			[]string{"--frobnicate"}, exitUsage, nil, []string{"unknown flag"}, true},
		{"stray argument", "arguments are flags only",
			[]string{"--config", good, "extra"}, exitUsage, nil, []string{`unexpected arguments ["extra"]`}, true},
		{"help", "flag help exits 0",
			[]string{"--help"}, exitOK, nil, []string{"--project"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			var stdout, stderr bytes.Buffer
			if code := configCheck(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			for _, s := range tc.stdoutHas {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, &stdout)
				}
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, &stderr)
				}
			}
			if tc.quiet && stdout.Len() > 0 {
				t.Errorf("stdout not empty:\n%s", &stdout)
			}
			if strings.Contains(strings.Join(tc.args, " "), "--json") && !json.Valid(stdout.Bytes()) {
				t.Errorf("--json printed no JSON:\n%s", &stdout)
			}
		})
	}
}
