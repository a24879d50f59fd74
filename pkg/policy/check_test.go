package policy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

func TestRunCheck(t *testing.T) {
	setStableEnv(t)
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, why  string
		args       []string
		code       int
		golden     string   // compare stdout with this file when set
		stdoutHas  []string // substrings of stdout
		stderrHas  []string // substrings of stderr
		noSecretIn bool     // stdout must not contain credential paths
	}{
		{
			name:       "valid json",
			why:        "the --json shape is a stable interface, pinned by a golden file",
			args:       []string{"--config", "testdata/check/castd.yaml", "--project", "testdata/check/project", "--json"},
			code:       policy.CheckOK,
			golden:     "testdata/check/report.golden",
			noSecretIn: true,
		},
		{
			name:       "valid text",
			why:        "the text report shows scenario, pull order with origins, push set and warnings",
			args:       []string{"--config", "testdata/check/castd.yaml", "--project", "testdata/check/project"},
			code:       policy.CheckOK,
			stdoutHas:  []string{"scenario: remote-cache-read-only", "origin=project", "push CAS:", "client_cert=<set>", `warning: project "demo" recommends pushing to https://demo.example.org`},
			noSecretIn: true,
		},
		{
			name:      "invalid config lists every error",
			why:       "exit 2 and all errors, across the user config and each project",
			args:      []string{"--config", "testdata/check/bad.yaml", "--project", "testdata/check/badproject"},
			code:      policy.CheckInvalid,
			stderrHas: []string{"bad.yaml:1:12: log-level: expected one of", "bad.yaml:4:5: artifacts.servers: expected a list, found a mapping", "project.conf:2:1: remote-execution: not allowed in project.conf", "3 error(s)"},
		},
		{
			name:      "invalid config as json",
			why:       "tools get the errors in the JSON too, with valid false",
			args:      []string{"--config", "testdata/check/bad.yaml", "--json"},
			code:      policy.CheckInvalid,
			stdoutHas: []string{`"valid": false`, `"key": "artifacts.servers"`, `"line": 4`},
		},
		{
			name:      "missing project directory",
			why:       "an unreadable project.conf is an error, not an empty project",
			args:      []string{"--config", "testdata/check/castd.yaml", "--project", "testdata/check/nowhere"},
			code:      policy.CheckInvalid,
			stderrHas: []string{"cannot read project config"},
		},
		{
			name:      "bad usage",
			why:       "an unknown flag is a usage error with the same exit code",
			args:      []string{"--frobnicate"},
			code:      policy.CheckInvalid,
			stderrHas: []string{"unknown flag"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			var stdout, stderr bytes.Buffer
			code := policy.RunCheck(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			out := strings.ReplaceAll(stdout.String(), cwd+string(filepath.Separator), "")
			if tc.golden != "" {
				compareGolden(t, tc.golden, []byte(out))
			}
			for _, s := range tc.stdoutHas {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, &stderr)
				}
			}
			if tc.noSecretIn && (strings.Contains(out, "client.key") || strings.Contains(out, "certs/")) {
				t.Errorf("report shows credential paths:\n%s", out)
			}
		})
	}
}

func TestRunCheckBuildStreamConf(t *testing.T) {
	// A whole buildstream.conf is valid: its remote sections are used, the
	// BuildStream-only settings are listed as unused, in text and JSON.
	setStableEnv(t)
	unused := []string{"cachedir", "logdir", "scheduler", "build", "logging", "cache.pull-buildtrees",
		"projects.freedesktop-sdk.strict", "projects.freedesktop-sdk.options", "projects.freedesktop-sdk.default-mirror"}
	t.Run("text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := policy.RunCheck([]string{"--config", "testdata/check/buildstream.conf"}, &stdout, &stderr); code != policy.CheckOK {
			t.Fatalf("exit %d, want 0\nstderr:\n%s", code, &stderr)
		}
		out := stdout.String()
		if !strings.Contains(out, "https://cache.example.com:11001") {
			t.Errorf("the remote section is not used:\n%s", out)
		}
		for _, k := range unused {
			if !strings.Contains(out, ": "+k+": BuildStream setting, not used by castd\n") {
				t.Errorf("text report does not list %s as a BuildStream setting:\n%s", k, out)
			}
		}
		if !strings.Contains(out, "buildstream.conf:2:1: cachedir:") {
			t.Errorf("the unused setting is not positioned:\n%s", out)
		}
	})
	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := policy.RunCheck([]string{"--config", "testdata/check/buildstream.conf", "--json"}, &stdout, &stderr); code != policy.CheckOK {
			t.Fatalf("exit %d, want 0\nstderr:\n%s", code, &stderr)
		}
		var rep policy.Report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, s := range rep.BuildStreamSettings {
			if s.Msg != policy.BuildStreamSettingMsg || s.Line == 0 {
				t.Errorf("entry %+v: want message %q and a line", s, policy.BuildStreamSettingMsg)
			}
			got[s.Key] = true
		}
		for _, k := range unused {
			if !got[k] {
				t.Errorf("JSON buildstream_settings lacks %s: %+v", k, rep.BuildStreamSettings)
			}
		}
		if len(rep.BuildStreamSettings) != len(unused) {
			t.Errorf("buildstream_settings has %d entries, want %d", len(rep.BuildStreamSettings), len(unused))
		}
	})
}

func TestRunCheckSyntaxErrorJSON(t *testing.T) {
	// A YAML syntax error in the JSON report had "key": "" and the line
	// before the tab; tools get the real line, column and key.
	setStableEnv(t)
	file := filepath.Join(t.TempDir(), "castd.yaml")
	if err := os.WriteFile(file, []byte("log-level: info\ncache:\n  quota: 1G\n\tlow-watermark: 80%\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := policy.RunCheck([]string{"--config", file, "--json"}, &stdout, &stderr); code != policy.CheckInvalid {
		t.Fatalf("exit %d, want %d", code, policy.CheckInvalid)
	}
	var rep policy.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 1 {
		t.Fatalf("errors %+v, want one", rep.Errors)
	}
	if e := rep.Errors[0]; e.Line != 4 || e.Col != 1 || e.Key != "cache.low-watermark" {
		t.Errorf("error at line %d column %d key %q, want line 4 column 1 key cache.low-watermark", e.Line, e.Col, e.Key)
	}
}
