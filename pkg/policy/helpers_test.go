package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

// userFile is the name test user configs are parsed under: relative auth
// paths in them resolve against testdata/, where the credential files are.
const userFile = "testdata/castd.yaml"

// projectFile is the name test project configs are parsed under.
const projectFile = "testdata/project.conf"

func mustUser(t *testing.T, text string) *policy.Config {
	t.Helper()
	cfg, err := policy.ParseUser(userFile, []byte(text))
	if err != nil {
		t.Fatalf("ParseUser: %v", err)
	}
	return cfg
}

func mustProject(t *testing.T, text string) *policy.Project {
	t.Helper()
	p, err := policy.ParseProject("testdata", projectFile, []byte(text))
	if err != nil {
		t.Fatalf("ParseProject: %v", err)
	}
	return p
}

// errorList extracts the individual errors, failing the test when err is
// not a policy.Errors.
func errorList(t *testing.T, err error) policy.Errors {
	t.Helper()
	var es policy.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not policy.Errors", err, err)
	}
	return es
}

// summary renders remotes as "url origin" (plus "/instance" when set) for
// compact comparisons.
func summary(rs []policy.Remote) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		s := r.URL
		if r.InstanceName != "" {
			s += "/" + r.InstanceName
		}
		parts[i] = s + " " + string(r.Origin)
	}
	return strings.Join(parts, ", ")
}
