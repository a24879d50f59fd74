package policy

import "fmt"

// Scenario is how actions are executed for a project (DESIGN §4).
type Scenario int

// The execution scenarios, numbered as in the BuildStream discussion.
const (
	// ScenarioLocal: no remote-execution block; run locally, cache locally.
	ScenarioLocal Scenario = 0
	// ScenarioRemoteExecution: an execution-service is configured.
	ScenarioRemoteExecution Scenario = 1
	// ScenarioRemoteCacheReadOnly: an action-cache-service without push.
	ScenarioRemoteCacheReadOnly Scenario = 2
	// ScenarioRemoteCacheReadWrite: an action-cache-service with push.
	ScenarioRemoteCacheReadWrite Scenario = 3
)

// String returns "local", "remote-execution", "remote-cache-read-only" or
// "remote-cache-read-write".
func (s Scenario) String() string {
	switch s {
	case ScenarioRemoteExecution:
		return "remote-execution"
	case ScenarioRemoteCacheReadOnly:
		return "remote-cache-read-only"
	case ScenarioRemoteCacheReadWrite:
		return "remote-cache-read-write"
	}
	return "local"
}

// MarshalText encodes the scenario as its String.
func (s Scenario) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Origin says which configuration a remote came from.
type Origin string

// Origins of resolved remotes.
const (
	// OriginUser is the global user config.
	OriginUser Origin = "user"
	// OriginUserProject is a `projects: NAME:` entry of the user config.
	OriginUserProject Origin = "user-project"
	// OriginProject is the project's own project.conf recommendation.
	OriginProject Origin = "project"
)

// Remote is one upstream in a resolved pull list. Auth holds this remote's
// own credentials only.
type Remote struct {
	URL          string     `json:"url"`
	InstanceName string     `json:"instance-name"`
	Type         RemoteType `json:"type"`
	// Role is the role of the list the remote is in (a server is in one
	// list per role it serves).
	Role Role `json:"role"`
	// Push is the effective push decision for that role.
	Push   bool   `json:"push"`
	Origin Origin `json:"origin"`
	// Section is the configuration block the remote came from.
	Section          Block            `json:"section"`
	Auth             Auth             `json:"auth"`
	ConnectionConfig ConnectionConfig `json:"connection-config"`
}

// Roles holds remotes by role, each list in pull order.
type Roles struct {
	Index   []Remote `json:"index"`
	Storage []Remote `json:"storage"`
}

// Resolved is the remote set of one project (or of the global user config
// when resolved without a project). All lists are in pull order; the Push*
// lists are the subsets that may be written to.
type Resolved struct {
	// Project is the project name, "" for the global user remotes.
	Project  string   `json:"project"`
	Scenario Scenario `json:"scenario"`
	// RemoteExecution is the block in force (per-project or global).
	RemoteExecution *RemoteExecution `json:"remote-execution"`

	// Artifacts and SourceCaches are the cache servers per role.
	Artifacts    Roles `json:"artifacts"`
	SourceCaches Roles `json:"source-caches"`

	// CAS serves ContentAddressableStorage and ByteStream reads.
	CAS []Remote `json:"cas"`
	// ActionCache serves GetActionResult.
	ActionCache []Remote `json:"action-cache"`
	// Assets serves Remote Asset Fetch (artifact refs, then source refs).
	Assets []Remote `json:"assets"`

	PushCAS         []Remote `json:"push-cas"`
	PushActionCache []Remote `json:"push-action-cache"`
	PushAssets      []Remote `json:"push-assets"`

	// Warnings are messages for the caller to log once, e.g. about a
	// project that recommends pushing to its servers.
	Warnings []string `json:"warnings"`
}

// Resolve computes the remotes for project (nil: global user remotes only)
// under cfg. It is a pure function of its arguments.
func Resolve(cfg *Config, project *Project) *Resolved {
	r := &Resolved{}
	var over ProjectOverride
	if project != nil {
		r.Project = project.Name
		over = cfg.Projects[project.Name]
	}
	var projArt, projSrc []Server
	if project != nil {
		projArt, projSrc = project.Artifacts, project.SourceCaches
	}
	art := r.section(BlockArtifacts, cfg.Artifacts, over.Artifacts, projArt)
	src := r.section(BlockSourceCaches, cfg.SourceCaches, over.SourceCaches, projSrc)
	r.Artifacts = splitRoles(art)
	r.SourceCaches = splitRoles(src)

	re := cfg.RemoteExecution
	reOrigin := OriginUser
	if over.RemoteExecution != nil {
		re, reOrigin = over.RemoteExecution, OriginUserProject
	}
	r.RemoteExecution = re
	r.Scenario = scenarioOf(re)
	pushStorage := r.Scenario == ScenarioRemoteExecution || r.Scenario == ScenarioRemoteCacheReadWrite

	var cas, ac []Remote
	if s := cfg.Cache.StorageService; s != nil {
		cas = append(cas, serviceRemote(s, OriginUser, BlockCacheStorage, true))
	}
	if re != nil && re.StorageService != nil {
		cas = append(cas, serviceRemote(re.StorageService, reOrigin, BlockStorageService, pushStorage))
	}
	if re != nil && re.ActionCacheService != nil {
		s := re.ActionCacheService
		ac = append(ac, serviceRemote(s, reOrigin, BlockActionCacheService, effectivePush(s.Push, s.Auth)))
	}
	r.CAS = withRole(RoleStorage, dedupe(append(append(cas, r.Artifacts.Storage...), r.SourceCaches.Storage...)))
	r.ActionCache = withRole(RoleActionCache, dedupe(append(ac, r.Artifacts.Index...)))
	r.Assets = withRole(RoleIndex, dedupe(append(append([]Remote(nil), r.Artifacts.Index...), r.SourceCaches.Index...)))
	r.PushCAS = pushing(r.CAS)
	r.PushActionCache = pushing(r.ActionCache)
	r.PushAssets = pushing(r.Assets)
	return r
}

// section merges one cache section: per-project user servers if any, else
// the global ones; then the project's, unless overridden at either level.
func (r *Resolved) section(name Block, global Section, per *Section, project []Server) []Remote {
	user, origin := global.Servers, OriginUser
	override := global.OverrideProjectCaches
	if per != nil {
		override = override || per.OverrideProjectCaches
		if len(per.Servers) > 0 {
			user, origin = per.Servers, OriginUserProject
		}
	}
	var out []Remote
	for _, s := range user {
		out = append(out, serverRemote(s, origin, name, effectivePush(s.Push, s.Auth)))
	}
	if override {
		return out
	}
	for _, s := range project {
		if s.Push != nil && *s.Push {
			r.warnf("project %q recommends pushing to %s; castd never pushes to project-recommended remotes", r.Project, s.URL)
		}
		out = append(out, serverRemote(s, OriginProject, name, false))
	}
	return out
}

func (r *Resolved) warnf(format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	for _, x := range r.Warnings {
		if x == w {
			return
		}
	}
	r.Warnings = append(r.Warnings, w)
}

// effectivePush applies the push rule for user-configured remotes: an
// explicit value wins, else push when the remote has client credentials.
func effectivePush(p *bool, a Auth) bool {
	if p != nil {
		return *p
	}
	return a.HasClientCredentials()
}

func scenarioOf(re *RemoteExecution) Scenario {
	switch {
	case re == nil:
		return ScenarioLocal
	case re.ExecutionService != nil:
		return ScenarioRemoteExecution
	case re.ActionCacheService != nil && effectivePush(re.ActionCacheService.Push, re.ActionCacheService.Auth):
		return ScenarioRemoteCacheReadWrite
	case re.ActionCacheService != nil:
		return ScenarioRemoteCacheReadOnly
	}
	return ScenarioLocal
}

func serverRemote(s Server, o Origin, section Block, push bool) Remote {
	return Remote{URL: s.URL, InstanceName: s.InstanceName, Type: s.Type, Push: push, Origin: o,
		Section: section, Auth: s.Auth, ConnectionConfig: s.ConnectionConfig}
}

func serviceRemote(s *Service, o Origin, section Block, push bool) Remote {
	t := TypeStorage
	if section == BlockActionCacheService {
		t = TypeIndex
	}
	return Remote{URL: s.URL, InstanceName: s.InstanceName, Type: t, Push: push, Origin: o,
		Section: section, Auth: s.Auth, ConnectionConfig: s.ConnectionConfig}
}

func splitRoles(rs []Remote) Roles {
	var out Roles
	for _, r := range rs {
		if r.Type.Index() {
			out.Index = append(out.Index, r)
		}
		if r.Type.Storage() {
			out.Storage = append(out.Storage, r)
		}
	}
	out.Index, out.Storage = withRole(RoleIndex, dedupe(out.Index)), withRole(RoleStorage, dedupe(out.Storage))
	return out
}

// dedupe keeps the first remote for each url and instance name.
func dedupe(rs []Remote) []Remote {
	type key struct{ url, instance string }
	seen := map[key]bool{}
	var out []Remote
	for _, r := range rs {
		k := key{r.URL, r.InstanceName}
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

func pushing(rs []Remote) []Remote {
	var out []Remote
	for _, r := range rs {
		if r.Push {
			out = append(out, r)
		}
	}
	return out
}
