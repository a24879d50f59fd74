package policy_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

// FuzzLoad feeds arbitrary bytes to the user-config and project.conf
// parsers and resolves whatever they accept: nothing may panic, and every
// rejection must be a policy.Errors with at least one entry.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/golden/*")
	more, _ := filepath.Glob("testdata/check/*.yaml")
	for _, p := range append(seeds, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "~", "- a", "artifacts: [1, 2]", "artifacts: {servers: {url: x}}",
		"a: &x [*x]", "<<: {log-level: debug}", "projects: {p: {remote-execution: {}}}",
		"socket-mode: 0o777", "cache: {quota: 1e400}", "listen: [unix:]",
		"name: x\nartifacts:\n- {url: 'unix:/s', auth: {client-key: /dev/null}}",
		"remote-platform: {a: [{b: c}]}", "{? [a]: b}", "\t", "cache: null",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := policy.ParseUser("fuzz.yaml", data)
		checkErr(t, err)
		p, perr := policy.ParseProject("testdata", "project.conf", data)
		checkErr(t, perr)
		if cfg != nil {
			r := policy.Resolve(cfg, p)
			rep := policy.BuildReport(cfg, []*policy.Project{p})
			want := 1
			if p != nil {
				want = 2
			}
			if r == nil || len(rep.Projects) != want {
				t.Fatalf("resolution lost projects: %+v", rep)
			}
			if _, err := rep.JSON(); err != nil {
				t.Fatalf("report does not encode: %v", err)
			}
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	es := errorList(t, err)
	if len(es) == 0 || es.Error() == "" {
		t.Fatalf("empty error list for a rejection")
	}
}
