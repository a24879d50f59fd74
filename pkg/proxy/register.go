package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

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
	// LastUsed is when a request last named the instance, in unix
	// seconds (0: unknown, counted from the next start).
	LastUsed int64 `json:"last_used,omitempty"`
}

// RegisterProject parses projectConf (a project.conf whose relative paths
// resolve against baseDir), resolves it against the user configuration and
// returns the instance name bound to the resulting remote set, with the
// `castd config check --json` report for it. name, when set, overrides the
// name in projectConf. A registration follows its project directory: the
// instance name depends on the project's name and directory only, and
// registering again with other remotes (an edited project.conf) replaces
// that instance's remotes under the same name; remotes no other instance
// uses then leave status and close. The binding is persisted and restored
// on start from the directory's project.conf. A bad project.conf is
// INVALID_ARGUMENT with the file, line and key.
func (s *Set) RegisterProject(ctx context.Context, name string, projectConf []byte, baseDir string) (string, []byte, error) {
	s.reloadMu.Lock() // resolve and bind against one configuration
	defer s.reloadMu.Unlock()
	reg := registration{Name: name, Conf: projectConf, BaseDir: baseDir}
	instanceName, p, r, err := s.resolve(reg)
	if err != nil {
		return "", nil, err
	}
	report, err := policy.BuildReport(s.config(), []*policy.Project{p}).JSON()
	if err != nil {
		return "", nil, status.Errorf(codes.Internal, "register project %q: report: %v", p.Name, err)
	}
	cur, err := s.lookup(instanceName)
	if err == nil && remoteSetHash(cur.resolved) == remoteSetHash(r) {
		return instanceName, report, nil
	}
	if err := s.bind(ctx, instanceName, r, &reg); err != nil {
		return "", nil, err
	}
	reg.LastUsed = s.opts.Clock.Now().Unix()
	if v, err := json.Marshal(reg); err == nil {
		if err := s.projects.Put([]byte(instanceName), v); err != nil {
			s.opts.Logger.Warn("register project: not persisted; clients must register again after a restart", "instance", instanceName, "err", err)
		}
	}
	if cur != nil {
		s.opts.Logger.Info("project registration replaced: its remotes changed", "project", p.Name, "instance", instanceName, "dir", baseDir)
		s.retireUnused()
		return instanceName, report, nil
	}
	s.opts.Logger.Info("registered project", "project", p.Name, "instance", instanceName, "dir", baseDir)
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
	return "p/" + p.Name + "-" + dirHash(filepath.Clean(reg.BaseDir)), p, r, nil
}

// dirHash identifies a project directory in 12 hex digits.
func dirHash(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:6])
}

// remoteSetHash identifies the remotes (with their roles, push decisions
// and credential paths) of r in 12 hex digits.
func remoteSetHash(r *policy.Resolved) string {
	b, _ := json.Marshal([]any{r.CAS, r.ActionCache, r.Assets, r.PushCAS, r.PushActionCache, r.PushAssets, r.Scenario})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// restoreProjects re-registers the projects persisted by earlier runs (or
// before a reload) into into, each from its directory's project.conf as it
// is now: an edited project.conf gets its new remotes, a directory that is
// gone drops the registration (logged), and a directory without a
// project.conf keeps the content last registered. Records of an earlier
// naming scheme are dropped; their clients register again.
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
		if err := s.restoreProject(ctx, into, x.key, x.reg); err != nil {
			s.opts.Logger.Info("dropping a project registration", "instance", x.key, "dir", x.reg.BaseDir, "reason", err)
			_ = s.projects.Delete([]byte(x.key))
		}
	}
}

// restoreProject re-reads reg's project.conf and binds it into into as key.
func (s *Set) restoreProject(ctx context.Context, into map[string]*instance, key string, reg registration) error {
	if _, err := os.Stat(reg.BaseDir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("project directory %s is gone", reg.BaseDir)
	}
	if ttl := s.config().RegistrationTTL; ttl > 0 && reg.LastUsed > 0 && s.opts.Clock.Now().Sub(time.Unix(reg.LastUsed, 0)) > ttl {
		return fmt.Errorf("unused since %s, longer than registration-ttl %s", time.Unix(reg.LastUsed, 0).UTC().Format(time.RFC3339), ttl)
	}
	if conf, err := os.ReadFile(filepath.Join(reg.BaseDir, "project.conf")); err == nil && !bytes.Equal(conf, reg.Conf) {
		reg.Conf = conf
		if v, err := json.Marshal(reg); err == nil {
			_ = s.projects.Put([]byte(key), v)
		}
	}
	name, _, r, err := s.resolve(reg)
	if err != nil {
		return err
	}
	if name != key {
		return fmt.Errorf("its project.conf now names another instance (%s), or the record is from an older naming scheme; the client registers again", name)
	}
	return s.bindInto(ctx, into, name, r, &reg)
}
