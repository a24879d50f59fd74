package policy_test

import (
	"bytes"
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
