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

// errorLines renders rep's errors one a line, as `castd config check`
// prints them.
func errorLines(rep policy.Report) string {
	var b strings.Builder
	for _, e := range rep.Errors {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}

func TestCheck(t *testing.T) {
	setStableEnv(t)
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, why  string
		file       string
		projects   []string
		json       bool     // render the report as JSON rather than text
		valid      bool     // rep.Valid
		errors     int      // len(rep.Errors) when set
		golden     string   // compare the rendered report with this file when set
		outHas     []string // substrings of the rendered report
		errsHave   []string // substrings of the errors, one a line
		noSecretIn bool     // the report must not contain credential paths
	}{
		{
			name:       "valid json",
			why:        "the --json shape is a stable interface, pinned by a golden file",
			file:       "testdata/check/castd.yaml",
			projects:   []string{"testdata/check/project"},
			json:       true,
			valid:      true,
			golden:     "testdata/check/report.golden",
			noSecretIn: true,
		},
		{
			name:       "valid text",
			why:        "the text report shows scenario, pull order with origins, push set and warnings",
			file:       "testdata/check/castd.yaml",
			projects:   []string{"testdata/check/project"},
			valid:      true,
			outHas:     []string{"scenario: remote-cache-read-only", "origin=project", "push CAS:", "client_cert=<set>", `warning: project "demo" recommends pushing to https://demo.example.org`},
			noSecretIn: true,
		},
		{
			name:     "invalid config lists every error",
			why:      "all errors, across the user config and each project",
			file:     "testdata/check/bad.yaml",
			projects: []string{"testdata/check/badproject"},
			errors:   3,
			errsHave: []string{"bad.yaml:1:12: log-level: expected one of", "bad.yaml:4:5: artifacts.servers: expected a list, found a mapping", "project.conf:2:1: remote-execution: not allowed in project.conf"},
		},
		{
			name:   "invalid config as json",
			why:    "tools get the errors in the JSON too, with valid false",
			file:   "testdata/check/bad.yaml",
			json:   true,
			outHas: []string{`"valid": false`, `"key": "artifacts.servers"`, `"line": 4`},
		},
		{
			name:     "missing project directory",
			why:      "an unreadable project.conf is an error, not an empty project",
			file:     "testdata/check/castd.yaml",
			projects: []string{"testdata/check/nowhere"},
			errsHave: []string{"cannot read project config"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			rep := policy.Check(tc.file, tc.projects)
			if rep.Valid != tc.valid {
				t.Fatalf("valid %t, want %t\nerrors:\n%s", rep.Valid, tc.valid, errorLines(rep))
			}
			if tc.errors > 0 && len(rep.Errors) != tc.errors {
				t.Errorf("%d errors, want %d:\n%s", len(rep.Errors), tc.errors, errorLines(rep))
			}
			var b bytes.Buffer
			if tc.json {
				j, _ := rep.JSON()
				b.Write(j)
			} else {
				rep.WriteText(&b)
			}
			out := strings.ReplaceAll(b.String(), cwd+string(filepath.Separator), "")
			if tc.golden != "" {
				compareGolden(t, tc.golden, []byte(out))
			}
			for _, s := range tc.outHas {
				if !strings.Contains(out, s) {
					t.Errorf("report lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.errsHave {
				if !strings.Contains(errorLines(rep), s) {
					t.Errorf("errors lack %q:\n%s", s, errorLines(rep))
				}
			}
			if tc.noSecretIn && (strings.Contains(out, "client.key") || strings.Contains(out, "certs/")) {
				t.Errorf("report shows credential paths:\n%s", out)
			}
		})
	}
}

func TestCheckBuildStreamConf(t *testing.T) {
	// A whole buildstream.conf is valid: its remote sections are used, the
	// BuildStream-only settings are listed as unused, in text and JSON.
	setStableEnv(t)
	unused := []string{"cachedir", "logdir", "scheduler", "build", "logging", "cache.pull-buildtrees",
		"projects.freedesktop-sdk.strict", "projects.freedesktop-sdk.options", "projects.freedesktop-sdk.default-mirror"}
	rep := policy.Check("testdata/check/buildstream.conf", nil)
	if !rep.Valid {
		t.Fatalf("not valid:\n%s", errorLines(rep))
	}
	t.Run("text", func(t *testing.T) {
		var b bytes.Buffer
		rep.WriteText(&b)
		out := b.String()
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
		j, _ := rep.JSON()
		var got policy.Report
		if err := json.Unmarshal(j, &got); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, s := range got.BuildStreamSettings {
			if s.Msg != policy.BuildStreamSettingMsg || s.Line == 0 {
				t.Errorf("entry %+v: want message %q and a line", s, policy.BuildStreamSettingMsg)
			}
			seen[s.Key] = true
		}
		for _, k := range unused {
			if !seen[k] {
				t.Errorf("JSON buildstream_settings lacks %s: %+v", k, got.BuildStreamSettings)
			}
		}
		if len(got.BuildStreamSettings) != len(unused) {
			t.Errorf("buildstream_settings has %d entries, want %d", len(got.BuildStreamSettings), len(unused))
		}
	})
}

func TestCheckSyntaxErrorJSON(t *testing.T) {
	// A YAML syntax error in the JSON report had "key": "" and the line
	// before the tab; tools get the real line, column and key.
	setStableEnv(t)
	file := filepath.Join(t.TempDir(), "castd.yaml")
	if err := os.WriteFile(file, []byte("log-level: info\ncache:\n  quota: 1G\n\tlow-watermark: 80%\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	j, _ := policy.Check(file, nil).JSON()
	var rep policy.Report
	if err := json.Unmarshal(j, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Valid {
		t.Fatal("a config with a syntax error is valid")
	}
	if len(rep.Errors) != 1 {
		t.Fatalf("errors %+v, want one", rep.Errors)
	}
	if e := rep.Errors[0]; e.Line != 4 || e.Col != 1 || e.Key != "cache.low-watermark" {
		t.Errorf("error at line %d column %d key %q, want line 4 column 1 key cache.low-watermark", e.Line, e.Col, e.Key)
	}
}
