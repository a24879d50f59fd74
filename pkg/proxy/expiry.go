package proxy

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
	used := s.opts.Clock.Now()
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
	ttl, now := s.config().RegistrationTTL, s.opts.Clock.Now()
	type record struct {
		name string
		reg  registration
		used time.Time
	}
	var dropped, touched []record
	s.mu.Lock()
	for name, inst := range s.instances {
		if inst.reg == nil {
			continue
		}
		used := time.Unix(0, inst.lastUsed.Load())
		switch {
		case ttl > 0 && now.Sub(used) > ttl:
			delete(s.instances, name)
			dropped = append(dropped, record{name, *inst.reg, used})
		case used.Unix() != inst.reg.LastUsed:
			touched = append(touched, record{name, *inst.reg, used})
		}
	}
	s.mu.Unlock()
	// The records are written outside mu: lookups must not wait for disk.
	for _, x := range dropped {
		s.forgetSeries(x.name, nil, nil)
		_ = s.projects.Delete([]byte(x.name))
		s.opts.Logger.Info("dropping a project registration: unused for longer than registration-ttl",
			"instance", x.name, "dir", x.reg.BaseDir, "last_used", x.used.UTC().Format(time.RFC3339), "registration_ttl", ttl.String())
	}
	for _, x := range touched {
		x.reg.LastUsed = x.used.Unix()
		if v, err := json.Marshal(x.reg); err == nil {
			_ = s.projects.Put([]byte(x.name), v)
		}
	}
	if len(dropped) > 0 {
		s.retireUnused()
	}
}
