package policy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/**/*.golden from the current output")

// setStableEnv fixes the environment the defaults derive from.
func setStableEnv(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	t.Setenv("XDG_CACHE_HOME", "/home/user/.cache")
	t.Setenv("XDG_CONFIG_HOME", "/nonexistent/config")
	t.Setenv("HOME", "/home/user")
}

// compareGolden compares got with the golden file, or rewrites it with -update.
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGoldenResolvedModel(t *testing.T) {
	setStableEnv(t)
	inputs, err := filepath.Glob("testdata/golden/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			// Config text in, the complete typed config and resolved model out.
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := policy.ParseUser(in, data)
			if err != nil {
				t.Fatalf("ParseUser: %v", err)
			}
			if cfg.LocalExecution.Jobs == runtime.NumCPU() {
				cfg.LocalExecution.Jobs = -1 // machine-dependent default
			}
			var project *policy.Project
			if pdata, err := os.ReadFile(strings.TrimSuffix(in, ".yaml") + ".project.conf"); err == nil {
				if project, err = policy.ParseProject("testdata/golden", name+".project.conf", pdata); err != nil {
					t.Fatalf("ParseProject: %v", err)
				}
			}
			out := struct {
				Config   *policy.Config   `json:"config"`
				Project  *policy.Project  `json:"project"`
				Global   *policy.Resolved `json:"global"`
				Resolved *policy.Resolved `json:"resolved"`
			}{cfg, project, policy.Resolve(cfg, nil), policy.Resolve(cfg, project)}
			got, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, strings.TrimSuffix(in, ".yaml")+".golden", append(got, '\n'))
		})
	}
}
