package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Report is the result of `castd config check`, also served by the daemon
// (castd.v1.Control ConfigReport) as JSON. Its JSON shape is stable:
//
//	{
//	  "valid": true,                       // false when errors is non-empty
//	  "config_file": "/home/u/.config/castd/castd.yaml",  // "" for none
//	  "errors": [                          // always present, maybe empty
//	    {"file": "castd.yaml", "line": 7, "column": 5,
//	     "key": "artifacts.servers", "message": "expected a list, found a mapping"}
//	  ],
//	  "buildstream_settings": [            // always present, maybe empty: keys of
//	    {"file": "buildstream.conf", "line": 2, "column": 1,   // BuildStream 2's user
//	     "key": "cachedir",                                   // config castd accepts
//	     "message": "BuildStream setting, not used by castd"} // and does not use
//	  ],
//	  "projects": [                        // first the global entry (project ""),
//	    {                                  // then one per project given
//	      "project": "foo",
//	      "directory": "/src/foo",         // "" for the global entry
//	      "scenario": "remote-cache-read-only",  // local | remote-execution |
//	                                       // remote-cache-read-only | remote-cache-read-write
//	      "pull": {                        // each list in pull order
//	        "cas": [REMOTE...], "action_cache": [REMOTE...], "remote_asset": [REMOTE...]
//	      },
//	      "push": {"cas": [...], "action_cache": [...], "remote_asset": [...]},
//	      "warnings": ["project \"foo\" recommends pushing to ..."]
//	    }
//	  ]
//	}
//
// where REMOTE is
//
//	{"url": "https://cache.example.com:11001", "instance_name": "main",
//	 "type": "all", "origin": "user", "section": "artifacts", "push": true,
//	 "auth": {"client_cert": "<set>", "client_key": "<set>"}}
//
// origin is "user", "user-project" or "project"; section is "artifacts",
// "source-caches", "cache.storage-service",
// "remote-execution.storage-service" or
// "remote-execution.action-cache-service". auth lists only the credentials
// that are configured, always as "<set>": a report never carries a
// credential or its path. Lists are [] rather than null.
type Report struct {
	Valid      bool    `json:"valid"`
	ConfigFile string  `json:"config_file"`
	Errors     []Error `json:"errors"`
	// BuildStreamSettings are Config.BuildStreamSettings: accepted, unused.
	BuildStreamSettings []Error         `json:"buildstream_settings"`
	Projects            []ProjectReport `json:"projects"`
}

// ProjectReport is the resolution for one project, or for the global user
// remotes when Project is "".
type ProjectReport struct {
	Project   string     `json:"project"`
	Directory string     `json:"directory"`
	Scenario  string     `json:"scenario"`
	Pull      RoleReport `json:"pull"`
	Push      RoleReport `json:"push"`
	Warnings  []string   `json:"warnings"`
}

// RoleReport lists remotes per REAPI service, in order.
type RoleReport struct {
	CAS         []RemoteReport `json:"cas"`
	ActionCache []RemoteReport `json:"action_cache"`
	RemoteAsset []RemoteReport `json:"remote_asset"`
}

// RemoteReport is a Remote without its credentials.
type RemoteReport struct {
	URL          string            `json:"url"`
	InstanceName string            `json:"instance_name"`
	Type         string            `json:"type"`
	Origin       string            `json:"origin"`
	Section      string            `json:"section"`
	Push         bool              `json:"push"`
	Auth         map[string]string `json:"auth,omitempty"`
}

// BuildReport resolves cfg for the global case and for each project, in
// the order given (nil entries are skipped). It is pure; callers add Errors for inputs that failed to
// load.
func BuildReport(cfg *Config, projects []*Project) Report {
	rep := Report{Valid: true, ConfigFile: cfg.File, Errors: []Error{}, BuildStreamSettings: append([]Error{}, cfg.BuildStreamSettings...)}
	rep.Projects = append(rep.Projects, projectReport(Resolve(cfg, nil), ""))
	for _, p := range projects {
		if p == nil {
			continue
		}
		rep.Projects = append(rep.Projects, projectReport(Resolve(cfg, p), p.Dir))
	}
	return rep
}

func projectReport(r *Resolved, dir string) ProjectReport {
	warnings := append([]string{}, r.Warnings...)
	return ProjectReport{
		Project:   r.Project,
		Directory: dir,
		Scenario:  r.Scenario.String(),
		Pull:      RoleReport{CAS: remoteReports(r.CAS), ActionCache: remoteReports(r.ActionCache), RemoteAsset: remoteReports(r.Assets)},
		Push:      RoleReport{CAS: remoteReports(r.PushCAS), ActionCache: remoteReports(r.PushActionCache), RemoteAsset: remoteReports(r.PushAssets)},
		Warnings:  warnings,
	}
}

func remoteReports(rs []Remote) []RemoteReport {
	out := []RemoteReport{}
	for _, r := range rs {
		out = append(out, RemoteReport{
			URL: r.URL, InstanceName: r.InstanceName, Type: string(r.Type),
			Origin: string(r.Origin), Section: string(r.Section), Push: r.Push, Auth: redactAuth(r.Auth),
		})
	}
	return out
}

// redactAuth names the configured credentials without revealing them.
func redactAuth(a Auth) map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{
		"server_cert": a.ServerCert, "client_cert": a.ClientCert,
		"client_key": a.ClientKey, "access_token": a.AccessToken,
	} {
		if v != "" {
			m[k] = "<set>"
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// JSON encodes the report in its documented shape, indented, with a
// trailing newline: the exact bytes of `castd config check --json`.
func (rep Report) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteText prints the report for people: per project, the scenario, the
// pull order per role with each server's origin, the push set, warnings,
// and any errors.
func (rep Report) WriteText(w io.Writer) {
	cfg := rep.ConfigFile
	if cfg == "" {
		cfg = "(none; built-in defaults)"
	}
	fmt.Fprintf(w, "config: %s\n", cfg)
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error: %s\n", e.Error())
	}
	for _, s := range rep.BuildStreamSettings {
		fmt.Fprintf(w, "ignored: %s\n", s.Error())
	}
	for _, p := range rep.Projects {
		if p.Project == "" && p.Directory == "" {
			fmt.Fprintf(w, "\nglobal (no project):\n")
		} else {
			fmt.Fprintf(w, "\nproject %q (%s):\n", p.Project, p.Directory)
		}
		fmt.Fprintf(w, "  scenario: %s\n", p.Scenario)
		writeRoles(w, "pull", p.Pull)
		writeRoles(w, "push", p.Push)
		for _, wn := range p.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", wn)
		}
	}
}

func writeRoles(w io.Writer, verb string, r RoleReport) {
	for _, role := range []struct {
		name string
		rs   []RemoteReport
	}{{"CAS", r.CAS}, {"ActionCache", r.ActionCache}, {"Remote Asset", r.RemoteAsset}} {
		if len(role.rs) == 0 {
			fmt.Fprintf(w, "  %s %s: (none)\n", verb, role.name)
			continue
		}
		fmt.Fprintf(w, "  %s %s:\n", verb, role.name)
		for i, x := range role.rs {
			fmt.Fprintf(w, "    %d. %s\n", i+1, describeRemote(x))
		}
	}
}

func describeRemote(x RemoteReport) string {
	var b strings.Builder
	b.WriteString(x.URL)
	if x.InstanceName != "" {
		fmt.Fprintf(&b, " instance=%s", x.InstanceName)
	}
	fmt.Fprintf(&b, " type=%s origin=%s section=%s push=%t", x.Type, x.Origin, x.Section, x.Push)
	for _, k := range []string{"server_cert", "client_cert", "client_key", "access_token"} {
		if v, ok := x.Auth[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	return b.String()
}
