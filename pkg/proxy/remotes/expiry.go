package remotes

import (
	"encoding/json"
	"time"
)

// expiryInterval is how often unused registrations are looked for and the
// last use of the others is persisted.
const expiryInterval = time.Hour

// setRegistration marks inst as serving reg, last used when reg says (or
// now when that is unknown).
func (s *Set) setRegistration(inst *instance, reg *registration) {
	if reg == nil {
		return
	}
	inst.reg = reg
	used := s.opts.Now()
	if reg.LastUsed > 0 {
		used = time.Unix(reg.LastUsed, 0)
	}
	inst.lastUsed.Store(used.UnixNano())
}

// sweepRegistrations runs expireRegistrations every expiryInterval until
// Close.
func (s *Set) sweepRegistrations() {
	t := time.NewTicker(expiryInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.expireRegistrations()
		case <-s.stopExpiry:
			return
		}
	}
}

// expireRegistrations drops the project registrations no request has named
// for longer than registration-ttl (0: never), with an info log; their
// remotes that no other instance uses leave status and close. The others'
// last use is persisted, so that a restart counts from it. Safe for
// concurrent use.
func (s *Set) expireRegistrations() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	ttl, now := s.config().RegistrationTTL, s.opts.Now()
	s.mu.Lock()
	var dropped []string
	for name, inst := range s.instances {
		if inst.reg == nil {
			continue
		}
		used := time.Unix(0, inst.lastUsed.Load())
		if ttl > 0 && now.Sub(used) > ttl {
			delete(s.instances, name)
			dropped = append(dropped, name)
			_ = s.projects.Delete([]byte(name))
			s.opts.Logger.Info("dropping a project registration: unused for longer than registration-ttl",
				"instance", name, "dir", inst.reg.BaseDir, "last_used", used.UTC().Format(time.RFC3339), "registration_ttl", ttl.String())
			continue
		}
		if sec := used.Unix(); sec != inst.reg.LastUsed {
			reg := *inst.reg
			reg.LastUsed = sec
			if v, err := json.Marshal(reg); err == nil {
				_ = s.projects.Put([]byte(name), v)
			}
		}
	}
	s.mu.Unlock()
	if len(dropped) > 0 {
		s.retireUnused()
	}
}
