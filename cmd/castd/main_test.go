package main

import (
	"bytes"
	"strings"
	"testing"
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
		{name: "help", why: "`castd help` lists subcommands and every flag", args: []string{"help"}, wantStdout: "--store-dir"},
		{name: "serve --help", why: "flag help exits 0 without starting anything", args: []string{"serve", "--help"}, wantStdout: "castd config check"},
		{name: "unknown flag", why: "a mistyped flag is a usage error, exit 2", args: []string{"--no-such-flag"}, wantCode: exitUsage, wantStderr: "no-such-flag"},
		{name: "stray argument", why: "an unknown subcommand must not silently start the daemon", args: []string{"srve"}, wantCode: exitUsage, wantStderr: `unexpected argument "srve"`},
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
