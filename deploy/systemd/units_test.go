package systemd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// execStart matches the binary of an ExecStart= line so the test can point it
// at a file that exists: systemd-analyze verify rejects a missing binary.
var execStart = regexp.MustCompile(`(?m)^ExecStart=(\S+)`)

func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not installed (apt-get install systemd): %v", err)
	}
	cases := []struct {
		name  string
		user  bool
		units []string
	}{
		// The workstation units are user units: `systemctl --user enable --now castd.socket`.
		{"user service and socket", true, []string{"castd.socket", "castd.service"}},
		// The CI sidecar is a system unit pair with a group-accessible socket.
		{"ci sidecar service and socket", false, []string{"castd-sidecar.socket", "castd-sidecar.service"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for _, u := range tc.units {
				text, err := os.ReadFile(u)
				if err != nil {
					t.Fatal(err)
				}
				fixed := execStart.ReplaceAllString(string(text), "ExecStart=/bin/true")
				p := filepath.Join(dir, u)
				if err := os.WriteFile(p, []byte(fixed), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
			}
			args := append([]string{"verify"}, paths...)
			if tc.user {
				args = append([]string{"--user"}, args...)
			}
			cmd := exec.Command(analyze, args...)
			runtime := filepath.Join(dir, "run")
			if err := os.Mkdir(runtime, 0o700); err != nil {
				t.Fatal(err)
			}
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime)
			out, err := cmd.CombinedOutput()
			// verify may exit 0 while printing problems; any output is a problem.
			if err != nil || strings.TrimSpace(string(out)) != "" {
				t.Fatalf("systemd-analyze %s: err=%v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

func TestUnitsReload(t *testing.T) {
	t.Log("`systemctl reload` sends castd SIGHUP, which re-reads its configuration")
	for _, u := range []string{"castd.service", "castd-sidecar.service"} {
		text, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(text), "\nExecReload=/bin/kill -HUP $MAINPID\n") {
			t.Errorf("%s: missing ExecReload=/bin/kill -HUP $MAINPID", u)
		}
	}
}

func TestUnitsHardening(t *testing.T) {
	// A user service must not gain privileges and must restart on failure.
	for _, u := range []string{"castd.service", "castd-sidecar.service"} {
		text, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Type=notify", "NoNewPrivileges=true", "ProtectSystem=strict", "Restart=on-failure", "PrivateTmp=true"} {
			if !strings.Contains(string(text), want) {
				t.Errorf("%s: missing %q", u, want)
			}
		}
	}
	text, err := os.ReadFile("castd-sidecar.service")
	if err != nil {
		t.Fatal(err)
	}
	// After= alone orders behind network-online.target without starting it:
	// the sidecar must pull it in with Wants= (systemd.special(7)).
	for _, want := range []string{"\nWants=network-online.target\n", "\nAfter=castd-sidecar.socket network-online.target\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("castd-sidecar.service: missing %q", strings.TrimSpace(want))
		}
	}
	text, err = os.ReadFile("castd-sidecar.socket")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "SocketMode=0660") || !strings.Contains(string(text), "SocketGroup=castd") {
		t.Errorf("sidecar socket must be group-accessible (SocketMode=0660, SocketGroup=castd):\n%s", text)
	}
}
