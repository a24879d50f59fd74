package integration_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeIn runs `make -C <repository root> args...` with env added to a
// clean environment; the Go caches stay the developer's so that the build
// is not a cold one.
func makeIn(t *testing.T, env []string, args ...string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var goEnv []string
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		v, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		goEnv = append(goEnv, k+"="+strings.TrimSpace(string(v)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-C", root}, args...)...)
	cmd.Env = append(cleanEnv(goEnv...), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make not installed (apt-get install -y make): %v", err)
	}
	cases := []struct {
		name    string
		why     string
		install string
		vars    func(dir string) []string
		files   func(dir string) map[string]os.FileMode // path -> permission
		hint    string                                  // printed by the install target
		check   func(t *testing.T, dir string)
	}{
		{
			name:    "install-user into HOME",
			why:     "a workstation user installs castd as a user service without root",
			install: "install-user",
			vars:    func(dir string) []string { return []string{"HOME=" + dir} },
			files: func(dir string) map[string]os.FileMode {
				return map[string]os.FileMode{
					dir + "/.local/bin/castd":                   0o755,
					dir + "/.local/bin/bst":                     0o755,
					dir + "/.local/bin/buildbox-casd":           0o755, // a link to castd, for BuildStream 2
					dir + "/.local/bin/buildbox-run":            0o755, // likewise, its sandbox runner
					dir + "/.config/systemd/user/castd.service": 0o644,
					dir + "/.config/systemd/user/castd.socket":  0o644,
				}
			},
			hint: "systemctl --user daemon-reload && systemctl --user enable --now castd.socket",
			check: func(t *testing.T, dir string) {
				// castd.service starts %h/.local/bin/castd: the binary must be where the unit looks.
				unit := readString(t, dir+"/.config/systemd/user/castd.service")
				if !strings.Contains(unit, "ExecStart=%h/.local/bin/castd serve") {
					t.Errorf("installed castd.service does not start ~/.local/bin/castd:\n%s", unit)
				}
			},
		},
		{
			name:    "install-user honours XDG_CONFIG_HOME and DESTDIR",
			why:     "systemd reads user units from $XDG_CONFIG_HOME; a trial install under DESTDIR must not write into the real home",
			install: "install-user",
			vars: func(dir string) []string {
				return []string{"HOME=" + dir + "/home", "XDG_CONFIG_HOME=" + dir + "/home/xdg-config", "XDG_DATA_HOME=" + dir + "/home/xdg-data", "DESTDIR=" + dir + "/dest"}
			},
			files: func(dir string) map[string]os.FileMode {
				d := dir + "/dest" + dir + "/home"
				return map[string]os.FileMode{
					d + "/.local/bin/castd":                      0o755,
					d + "/.local/bin/bst":                        0o755,
					d + "/.local/bin/buildbox-casd":              0o755,
					d + "/.local/bin/buildbox-run":               0o755,
					d + "/xdg-config/systemd/user/castd.service": 0o644,
					d + "/xdg-config/systemd/user/castd.socket":  0o644,
					d + "/xdg-data/doc/castd/README.md":          0o644,
				}
			},
			hint: "systemctl --user daemon-reload && systemctl --user enable --now castd.socket",
			check: func(t *testing.T, dir string) {
				// (The Go build itself may keep telemetry under XDG_CONFIG_HOME/go.)
				for _, p := range []string{"/home/.local", "/home/.config", "/home/xdg-config/systemd", "/home/xdg-data"} {
					if _, err := os.Stat(dir + p); !os.IsNotExist(err) {
						t.Errorf("install-user with DESTDIR wrote into the real home: %s exists (%v)", dir+p, err)
					}
				}
			},
		},
		{
			name:    "install into DESTDIR with PREFIX",
			why:     "a CI image installs the sidecar system units, possibly staged by a package build",
			install: "install",
			vars: func(dir string) []string {
				return []string{"HOME=" + dir + "/home", "DESTDIR=" + dir + "/dest", "PREFIX=/opt/castd"}
			},
			files: func(dir string) map[string]os.FileMode {
				return map[string]os.FileMode{
					dir + "/dest/opt/castd/bin/castd":                      0o755,
					dir + "/dest/opt/castd/bin/bst":                        0o755,
					dir + "/dest/opt/castd/bin/buildbox-casd":              0o755,
					dir + "/dest/opt/castd/bin/buildbox-run":               0o755,
					dir + "/dest/etc/systemd/system/castd-sidecar.service": 0o644,
					dir + "/dest/etc/systemd/system/castd-sidecar.socket":  0o644,
				}
			},
			hint: "systemctl daemon-reload && systemctl enable --now castd-sidecar.socket",
			check: func(t *testing.T, dir string) {
				// The unit must start the binary from PREFIX, without DESTDIR in the path.
				unit := readString(t, dir+"/dest/etc/systemd/system/castd-sidecar.service")
				if !strings.Contains(unit, "ExecStart=/opt/castd/bin/castd serve") {
					t.Errorf("installed castd-sidecar.service does not start PREFIX/bin/castd:\n%s", unit)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			dir := t.TempDir()
			vars := append(tc.vars(dir), "BIN="+filepath.Join(dir, "build"))
			out := makeIn(t, vars, append([]string{tc.install}, vars...)...)
			if !strings.Contains(out, tc.hint) {
				t.Errorf("make %s does not tell the user to run %q:\n%s", tc.install, tc.hint, out)
			}
			for path, perm := range tc.files(dir) {
				fi, err := os.Stat(path)
				if err != nil {
					t.Errorf("make %s: %v", tc.install, err)
					continue
				}
				if fi.Mode().Perm() != perm {
					t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), perm)
				}
			}
			tc.check(t, dir)
			for path := range tc.files(dir) {
				// BuildStream finds buildbox-casd and buildbox-run on PATH: they must be castd under those names.
				if base := filepath.Base(path); base == "buildbox-casd" || base == "buildbox-run" {
					if target, err := os.Readlink(path); err != nil || target != "castd" {
						t.Errorf("%s -> %q (%v), want a link to castd beside it", path, target, err)
					}
				}
			}

			makeIn(t, vars, append([]string{"uninstall"}, vars...)...)
			for path := range tc.files(dir) {
				if _, err := os.Lstat(path); !os.IsNotExist(err) { // Lstat: a dangling link counts as left behind
					t.Errorf("make uninstall left %s behind (%v)", path, err)
				}
			}
		})
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
