package policy_test

import (
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

func TestResolve(t *testing.T) {
	const upstream = `
name: upstream
artifacts:
- url: https://upstream.example.org:11001
  push: true
source-caches:
- url: https://sources.upstream.example.org
`
	tests := []struct {
		name, why      string
		user, project  string
		noProject      bool
		cas, ac, asset string
		pushCAS        string
		pushAC         string
		pushAsset      string
		warnings       int
		scenario       policy.Scenario
	}{
		{
			name: "no configuration is local only",
			why:  "castd with no config file must use no remote at all",
			user: ``, noProject: true,
			scenario: policy.ScenarioLocal,
		},
		{
			name: "user overrides project caches with own servers",
			why:  "override-project-caches drops every project server; only the user's remain",
			user: `
artifacts:
  override-project-caches: true
  servers:
  - url: https://mine.example.com
    auth: {client-cert: certs/client.crt, client-key: certs/client.key}
source-caches:
  override-project-caches: true
`,
			project:   upstream,
			cas:       "https://mine.example.com user",
			ac:        "https://mine.example.com user",
			asset:     "https://mine.example.com user",
			pushCAS:   "https://mine.example.com user",
			pushAC:    "https://mine.example.com user",
			pushAsset: "https://mine.example.com user",
		},
		{
			name: "user overrides project caches without servers",
			why:  "use nothing from third-party infrastructure: no remote at all, and no warning about a dropped server",
			user: `
artifacts: {override-project-caches: true}
source-caches: {override-project-caches: true}
`,
			project: upstream,
		},
		{
			name: "user augments project caches",
			why:  "without override the user's servers come first, the project's after",
			user: `
artifacts:
  servers:
  - url: https://mine.example.com
`,
			project:  upstream,
			cas:      "https://mine.example.com user, https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			ac:       "https://mine.example.com user, https://upstream.example.org:11001 project",
			asset:    "https://mine.example.com user, https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			warnings: 1,
		},
		{
			name: "per-project override wins over global",
			why:  "projects: NAME: servers replace the global servers for that project",
			user: `
artifacts:
  servers:
  - url: https://global.example.com
projects:
  upstream:
    artifacts:
      override-project-caches: true
      servers:
      - url: https://per-project.example.com
        push: true
`,
			project:   upstream,
			cas:       "https://per-project.example.com user-project, https://sources.upstream.example.org project",
			ac:        "https://per-project.example.com user-project",
			asset:     "https://per-project.example.com user-project, https://sources.upstream.example.org project",
			pushCAS:   "https://per-project.example.com user-project",
			pushAC:    "https://per-project.example.com user-project",
			pushAsset: "https://per-project.example.com user-project",
		},
		{
			name: "per-project override does not apply to other projects",
			why:  "an entry for another project name must leave the global servers in force",
			user: `
artifacts:
  servers:
  - url: https://global.example.com
projects:
  other:
    artifacts: {override-project-caches: true, servers: [{url: https://other.example.com}]}
`,
			project:  upstream,
			cas:      "https://global.example.com user, https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			ac:       "https://global.example.com user, https://upstream.example.org:11001 project",
			asset:    "https://global.example.com user, https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			warnings: 1,
		},
		{
			name: "per-project override flag without servers keeps global servers",
			why:  "per-project servers are used only if there are any; the override flag alone drops only the project's",
			user: `
artifacts:
  servers: [{url: https://global.example.com}]
projects:
  upstream:
    artifacts: {override-project-caches: true}
`,
			project: upstream,
			cas:     "https://global.example.com user, https://sources.upstream.example.org project",
			ac:      "https://global.example.com user",
			asset:   "https://global.example.com user, https://sources.upstream.example.org project",
		},
		{
			name: "re-cache upstream artifacts on own infrastructure",
			why:  "pull from the user's server then the project's, push only to the user's",
			user: `
artifacts:
  servers:
  - url: https://mine.example.com
    push: true
`,
			project:   upstream,
			cas:       "https://mine.example.com user, https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			ac:        "https://mine.example.com user, https://upstream.example.org:11001 project",
			asset:     "https://mine.example.com user, https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			pushCAS:   "https://mine.example.com user",
			pushAC:    "https://mine.example.com user",
			pushAsset: "https://mine.example.com user",
			warnings:  1,
		},
		{
			name:     "project push true is never pushed",
			why:      "a project-recommended server is read-only whatever project.conf says, with one warning",
			project:  upstream,
			cas:      "https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			ac:       "https://upstream.example.org:11001 project",
			asset:    "https://upstream.example.org:11001 project, https://sources.upstream.example.org project",
			warnings: 1,
		},
		{
			name: "redundant servers keep their order and drop duplicates",
			why:  "several servers are tried in the configured order; a repeat of url+instance keeps its first place",
			user: `
artifacts:
  servers:
  - url: https://b.example.com
  - url: https://a.example.com
  - url: https://b.example.com
  - url: https://b.example.com
    instance-name: other
`,
			project: `
name: p
artifacts:
- url: https://a.example.com
- url: https://c.example.com
`,
			cas:   "https://b.example.com user, https://a.example.com user, https://b.example.com/other user, https://c.example.com project",
			ac:    "https://b.example.com user, https://a.example.com user, https://b.example.com/other user, https://c.example.com project",
			asset: "https://b.example.com user, https://a.example.com user, https://b.example.com/other user, https://c.example.com project",
		},
		{
			name: "index-only and storage-only servers serve their role only",
			why:  "type index serves ActionCache and Remote Asset, type storage serves CAS, both accepts all",
			user: `
artifacts:
  servers:
  - {url: https://index.example.com, type: index}
  - {url: https://storage.example.com, type: storage}
  - {url: https://both.example.com, type: both}
source-caches:
  servers:
  - {url: https://src-index.example.com, type: index}
  - {url: https://src-storage.example.com, type: storage}
`,
			noProject: true,
			cas:       "https://storage.example.com user, https://both.example.com user, https://src-storage.example.com user",
			ac:        "https://index.example.com user, https://both.example.com user",
			asset:     "https://index.example.com user, https://both.example.com user, https://src-index.example.com user",
		},
		{
			name: "push defaults from credentials",
			why:  "unset push is true with client cert+key or a token, false with only a server cert; explicit false wins",
			user: `
artifacts:
  servers:
  - url: https://mtls.example.com
    auth: {server-cert: certs/ca.pem, client-cert: certs/client.crt, client-key: certs/client.key}
  - url: https://token.example.com
    auth: {access-token: certs/token.txt}
  - url: https://anon.example.com
    auth: {server-cert: certs/ca.pem}
  - url: https://opted-out.example.com
    push: false
    auth: {access-token: certs/token.txt}
`,
			noProject: true,
			cas:       "https://mtls.example.com user, https://token.example.com user, https://anon.example.com user, https://opted-out.example.com user",
			ac:        "https://mtls.example.com user, https://token.example.com user, https://anon.example.com user, https://opted-out.example.com user",
			asset:     "https://mtls.example.com user, https://token.example.com user, https://anon.example.com user, https://opted-out.example.com user",
			pushCAS:   "https://mtls.example.com user, https://token.example.com user",
			pushAC:    "https://mtls.example.com user, https://token.example.com user",
			pushAsset: "https://mtls.example.com user, https://token.example.com user",
		},
		{
			name: "scenario 1 remote execution",
			why:  "an execution-service selects remote execution; blobs go to its storage service first",
			user: `
remote-execution:
  execution-service: {url: https://re.example.com}
  storage-service: {url: https://cas.example.com}
  action-cache-service: {url: https://ac.example.com}
artifacts:
  servers: [{url: https://mine.example.com}]
`,
			noProject: true,
			scenario:  policy.ScenarioRemoteExecution,
			cas:       "https://cas.example.com user, https://mine.example.com user",
			ac:        "https://ac.example.com user, https://mine.example.com user",
			asset:     "https://mine.example.com user",
			pushCAS:   "https://cas.example.com user",
		},
		{
			name: "scenario 2 read-only remote cache",
			why:  "an action-cache-service with push false: pull from it, never write to it",
			user: `
remote-execution:
  storage-service: {url: https://cas.example.com}
  action-cache-service: {url: https://ac.example.com, push: false}
`,
			noProject: true,
			scenario:  policy.ScenarioRemoteCacheReadOnly,
			cas:       "https://cas.example.com user",
			ac:        "https://ac.example.com user",
		},
		{
			name: "scenario 3 read-write remote cache",
			why:  "an action-cache-service with push true: results and their blobs are uploaded",
			user: `
remote-execution:
  storage-service: {url: https://cas.example.com}
  action-cache-service: {url: https://ac.example.com, push: true}
`,
			noProject: true,
			scenario:  policy.ScenarioRemoteCacheReadWrite,
			cas:       "https://cas.example.com user",
			ac:        "https://ac.example.com user",
			pushCAS:   "https://cas.example.com user",
			pushAC:    "https://ac.example.com user",
		},
		{
			name: "scenario 3 from action cache credentials",
			why:  "push unset on the action-cache-service follows the credential rule",
			user: `
remote-execution:
  storage-service: {url: https://cas.example.com}
  action-cache-service: {url: https://ac.example.com, auth: {access-token: certs/token.txt}}
`,
			noProject: true,
			scenario:  policy.ScenarioRemoteCacheReadWrite,
			cas:       "https://cas.example.com user",
			ac:        "https://ac.example.com user",
			pushCAS:   "https://cas.example.com user",
			pushAC:    "https://ac.example.com user",
		},
		{
			name: "per-project remote-execution replaces global",
			why:  "the projects: NAME: remote-execution block is the whole block for that project",
			user: `
remote-execution:
  execution-service: {url: https://re.example.com}
  storage-service: {url: https://cas.example.com}
projects:
  upstream:
    remote-execution:
      storage-service: {url: https://project-cas.example.com}
      action-cache-service: {url: https://project-ac.example.com}
artifacts: {override-project-caches: true}
source-caches: {override-project-caches: true}
`,
			project:  upstream,
			scenario: policy.ScenarioRemoteCacheReadOnly,
			cas:      "https://project-cas.example.com user-project",
			ac:       "https://project-ac.example.com user-project",
		},
		{
			name: "cache storage-service comes first",
			why:  "cache.storage-service is the primary remote CAS, ahead of the remote-execution storage",
			user: `
cache:
  storage-service: {url: https://primary.example.com}
remote-execution:
  action-cache-service: {url: https://ac.example.com}
`,
			noProject: true,
			scenario:  policy.ScenarioRemoteCacheReadOnly,
			cas:       "https://primary.example.com user",
			ac:        "https://ac.example.com user",
			pushCAS:   "https://primary.example.com user",
		},
		{
			name:      "global resolution ignores project overrides",
			why:       "the empty instance name means global user remotes only",
			user:      `projects: {upstream: {artifacts: {servers: [{url: https://p.example.com}]}}}`,
			noProject: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			cfg := mustUser(t, tc.user)
			var p *policy.Project
			if !tc.noProject {
				p = mustProject(t, tc.project)
			}
			r := policy.Resolve(cfg, p)
			check := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s (%s):\n got  %s\n want %s", what, tc.why, got, want)
				}
			}
			check("CAS", summary(r.CAS), tc.cas)
			check("ActionCache", summary(r.ActionCache), tc.ac)
			check("Assets", summary(r.Assets), tc.asset)
			check("PushCAS", summary(r.PushCAS), tc.pushCAS)
			check("PushActionCache", summary(r.PushActionCache), tc.pushAC)
			check("PushAssets", summary(r.PushAssets), tc.pushAsset)
			if r.Scenario != tc.scenario {
				t.Errorf("scenario = %v, want %v", r.Scenario, tc.scenario)
			}
			if len(r.Warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", r.Warnings, tc.warnings)
			}
			for _, push := range [][]policy.Remote{r.PushCAS, r.PushActionCache, r.PushAssets} {
				for _, x := range push {
					if x.Origin == policy.OriginProject {
						t.Errorf("project-recommended remote %s in a push set", x.URL)
					}
				}
			}
		})
	}
}

func TestResolveWarningNamesProjectAndURL(t *testing.T) {
	// The warning is the only trace of an ignored push: it must say who and where.
	p := mustProject(t, "name: foo\nartifacts:\n- {url: https://foo.example.com, push: true}\n- {url: https://foo.example.com, push: true}\n")
	r := policy.Resolve(mustUser(t, ""), p)
	want := `project "foo" recommends pushing to https://foo.example.com; castd never pushes to project-recommended remotes`
	if len(r.Warnings) != 1 || r.Warnings[0] != want {
		t.Fatalf("warnings = %q, want [%q]", r.Warnings, want)
	}
}

func TestResolveCredentialsStayWithTheirServer(t *testing.T) {
	// Credentials configured for one remote must never be sent to another.
	cfg := mustUser(t, `
artifacts:
  servers:
  - url: https://a.example.com
    auth: {access-token: certs/token.txt}
  - url: https://b.example.com
`)
	p := mustProject(t, "name: x\nartifacts: [{url: https://c.example.com, auth: {server-cert: certs/ca.pem}}]\n")
	r := policy.Resolve(cfg, p)
	got := map[string]policy.Auth{}
	for _, x := range r.CAS {
		got[x.URL] = x.Auth
	}
	if got["https://a.example.com"].AccessToken != "testdata/certs/token.txt" {
		t.Errorf("a lost its token: %+v", got["https://a.example.com"])
	}
	if got["https://b.example.com"] != (policy.Auth{}) {
		t.Errorf("b has credentials it was not given: %+v", got["https://b.example.com"])
	}
	if a := got["https://c.example.com"]; a.ServerCert != "testdata/certs/ca.pem" || a.AccessToken != "" {
		t.Errorf("c auth = %+v, want only its own server cert", a)
	}
}

func TestScenarioString(t *testing.T) {
	// The names are part of the config check output and JSON shape.
	for s, want := range map[policy.Scenario]string{
		policy.ScenarioLocal:                "local",
		policy.ScenarioRemoteExecution:      "remote-execution",
		policy.ScenarioRemoteCacheReadOnly:  "remote-cache-read-only",
		policy.ScenarioRemoteCacheReadWrite: "remote-cache-read-write",
	} {
		if got := s.String(); got != want || !strings.Contains(want, got) {
			t.Errorf("Scenario(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestResolveStampsRoles(t *testing.T) {
	// A builder picks tiers by role: every resolved list carries its role,
	// and one server in several lists has a role per list.
	cfg := mustUser(t, `
cache:
  storage-service: {url: https://cas.example.com}
remote-execution:
  action-cache-service: {url: https://ac.example.com, push: true}
artifacts:
  servers:
  - {url: https://all.example.com, type: all, push: true}
`)
	r := policy.Resolve(cfg, nil)
	lists := []struct {
		name string
		rs   []policy.Remote
		want policy.Role
	}{
		{"cas", r.CAS, policy.RoleStorage}, {"push-cas", r.PushCAS, policy.RoleStorage},
		{"action-cache", r.ActionCache, policy.RoleActionCache}, {"push-action-cache", r.PushActionCache, policy.RoleActionCache},
		{"assets", r.Assets, policy.RoleIndex}, {"push-assets", r.PushAssets, policy.RoleIndex},
		{"artifacts.index", r.Artifacts.Index, policy.RoleIndex}, {"artifacts.storage", r.Artifacts.Storage, policy.RoleStorage},
	}
	for _, l := range lists {
		if len(l.rs) == 0 {
			t.Errorf("%s is empty", l.name)
		}
		for _, x := range l.rs {
			if x.Role != l.want {
				t.Errorf("%s: %s has role %v; want %v", l.name, x.URL, x.Role, l.want)
			}
		}
	}
	if r.CAS[0].Section != policy.BlockCacheStorage || r.ActionCache[0].Section != policy.BlockActionCacheService {
		t.Errorf("sections %q, %q; want the cache storage-service and action-cache-service blocks", r.CAS[0].Section, r.ActionCache[0].Section)
	}
}

func TestRoleString(t *testing.T) {
	// The names are the roles of the status report and the JSON shape.
	for role, want := range map[policy.Role]string{
		policy.RoleStorage: "storage", policy.RoleActionCache: "action-cache", policy.RoleIndex: "index",
		policy.RoleExecution: "execution", policy.Role(0): "none",
	} {
		if got := role.String(); got != want {
			t.Errorf("Role(%d).String() = %q, want %q", int(role), got, want)
		}
	}
}
