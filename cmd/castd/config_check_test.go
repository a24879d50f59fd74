package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
