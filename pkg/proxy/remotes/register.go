package remotes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/policy"
)

// registration is what is persisted per registered project, enough to
// resolve it again after a restart.
type registration struct {
	Name    string `json:"name"`
	Conf    []byte `json:"conf"`
	BaseDir string `json:"base_dir"`
}

// RegisterProject parses projectConf (a project.conf whose relative paths
// resolve against baseDir), resolves it against the user configuration and
// returns the instance name bound to the resulting remote set, with the
// `castd config check --json` report for it. name, when set, overrides the
// name in projectConf. The same project and remotes always give the same
// instance name; the binding is persisted and restored on start. A bad
// project.conf is INVALID_ARGUMENT with the file, line and key.
func (s *Set) RegisterProject(ctx context.Context, name string, projectConf []byte, baseDir string) (string, []byte, error) {
	reg := registration{Name: name, Conf: projectConf, BaseDir: baseDir}
	instanceName, p, r, err := s.resolve(reg)
	if err != nil {
		return "", nil, err
	}
	report, err := policy.BuildReport(s.config(), []*policy.Project{p}).JSON()
	if err != nil {
		return "", nil, status.Errorf(codes.Internal, "register project %q: report: %v", p.Name, err)
	}
	if _, err := s.lookup(instanceName); err == nil {
		return instanceName, report, nil
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if err := s.bind(ctx, instanceName, r); err != nil {
		return "", nil, err
	}
	if v, err := json.Marshal(reg); err == nil {
		if err := s.projects.Put([]byte(instanceName), v); err != nil {
			s.opts.Logger.Warn("register project: not persisted; clients must register again after a restart", "instance", instanceName, "err", err)
		}
	}
	s.opts.Logger.Info("registered project", "project", p.Name, "instance", instanceName)
	return instanceName, report, nil
}

// resolve parses reg and returns its instance name, project and remotes.
func (s *Set) resolve(reg registration) (string, *policy.Project, *policy.Resolved, error) {
	if reg.BaseDir == "" || !filepath.IsAbs(reg.BaseDir) {
		return "", nil, nil, status.Errorf(codes.InvalidArgument, "register project: base_dir %q must be an absolute directory", reg.BaseDir)
	}
	p, err := policy.ParseProject(reg.BaseDir, filepath.Join(reg.BaseDir, "project.conf"), reg.Conf)
	if err != nil {
		return "", nil, nil, status.Errorf(codes.InvalidArgument, "register project: %v", err)
	}
	if reg.Name != "" {
		p.Name = reg.Name
	}
	if p.Name == "" {
		return "", nil, nil, status.Error(codes.InvalidArgument, "register project: no name given and project.conf has no `name`")
	}
	r := policy.Resolve(s.config(), p)
	return "p/" + p.Name + "-" + remoteSetHash(r), p, r, nil
}

// remoteSetHash identifies the remotes (with their roles, push decisions
// and credential paths) of r in 12 hex digits.
func remoteSetHash(r *policy.Resolved) string {
	b, _ := json.Marshal([]any{r.CAS, r.ActionCache, r.Assets, r.PushCAS, r.PushActionCache, r.PushAssets, r.Scenario})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// restoreProjects re-registers the projects persisted by earlier runs (or
// before a reload) into into. A
// project whose remotes changed with the configuration gets a new name
// when its client registers again; its old record is dropped.
func (s *Set) restoreProjects(ctx context.Context, into map[string]*instance) {
	type saved struct {
		key string
		reg registration
	}
	var all []saved
	_ = s.projects.Scan(func(k, v []byte) error {
		var reg registration
		if json.Unmarshal(v, &reg) == nil {
			all = append(all, saved{string(k), reg})
		}
		return nil
	})
	for _, x := range all {
		name, _, r, err := s.resolve(x.reg)
		if err == nil && name == x.key {
			err = s.bindInto(ctx, into, name, r)
		} else if err == nil {
			err = status.Errorf(codes.FailedPrecondition, "its remotes changed (now %s)", name)
		}
		if err != nil {
			s.opts.Logger.Info("dropping a project registration from an earlier run", "instance", x.key, "reason", err)
			_ = s.projects.Delete([]byte(x.key))
		}
	}
}
