package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

func TestListenAuth(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token.txt")
	if err := os.WriteFile(token, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "castd.yaml")
	tests := []struct {
		name, why, text string
		wantToken       string
		wantLog         bool
		wantErr         string
	}{
		{name: "unset", why: "without listen-auth, TCP clients need no token (the default)",
			text: "log-level: info\n"},
		{name: "token file", why: "listen-auth.access-token names the file TCP clients' bearer token must match",
			text: "listen-auth:\n  access-token: token.txt\nlog-request-metadata: true\n", wantToken: token, wantLog: true},
		{name: "missing file", why: "an unreadable token file is a config error, not an open server",
			text: "listen-auth:\n  access-token: nope.txt\n", wantErr: "listen-auth.access-token"},
		{name: "unknown key", why: "typos under listen-auth are errors",
			text: "listen-auth:\n  token: x\n", wantErr: "listen-auth.token: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			cfg, err := policy.ParseUser(file, []byte(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseUser error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ListenAuth.AccessToken != tc.wantToken || cfg.LogRequestMetadata != tc.wantLog {
				t.Errorf("got listen-auth %q, log-request-metadata %v; want %q, %v",
					cfg.ListenAuth.AccessToken, cfg.LogRequestMetadata, tc.wantToken, tc.wantLog)
			}
		})
	}
}
