package policy_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

func TestConfiguredSocket(t *testing.T) {
	t.Log("clients without a socket flag find the daemon at the first unix listener of castd.yaml, else at the default socket; a daemon on TCP only has none")
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"first unix listener", "listen: [grpc://127.0.0.1:8980, unix:/srv/castd/a.sock, unix:/srv/castd/b.sock]\n", "/srv/castd/a.sock"},
		{"no castd.yaml: the default", "", "/run/user/test/castd/castd.sock"},
		{"TCP only", "listen: [grpc://127.0.0.1:8980]\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("XDG_CONFIG_HOME", home)
			t.Setenv("XDG_RUNTIME_DIR", "/run/user/test")
			if tc.yaml != "" {
				if err := os.MkdirAll(filepath.Join(home, "castd"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(home, "castd", "castd.yaml"), []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := policy.ConfiguredSocket(); got != tc.want {
				t.Errorf("ConfiguredSocket() = %q, want %q", got, tc.want)
			}
		})
	}
}
