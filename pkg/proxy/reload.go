package proxy

import (
	"context"
	"slices"
	"time"

	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store/fanout"
)

// retireGrace is how long a remote that a reload left unused keeps its
// connection, so that calls started before the reload finish on it.
const retireGrace = 5 * time.Minute

// Reload serves cfg from now on: it builds the instances of cfg ("" and
// the `projects:` names) and re-resolves the registered projects against
// it while the old instances keep serving, then swaps them in at once.
// Remotes both configurations use keep their connections (and their
// breakers); remotes only the old one used leave status and close after
// retireGrace, except push targets, which stay open until Close because
// the write-back queue keeps pushing what it holds for them. The queue
// keeps its entries, and roles it parked (a remote that refused pushes for
// good) are retried, since the change may have fixed the refusal.
// Registered projects are resolved again from their directories'
// project.conf. When cfg cannot be built (an unreadable certificate),
// nothing changes and the error says why. Safe for concurrent use; reloads are serialized.
func (s *Set) Reload(ctx context.Context, cfg *policy.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.cfg.Swap(cfg)
	insts, err := s.buildStatic(ctx, cfg)
	if err != nil {
		s.cfg.Store(old)
		s.retireUnused()
		return err
	}
	s.restoreProjects(ctx, insts)
	s.mu.Lock()
	before := s.instances
	s.instances = insts
	s.mu.Unlock()
	for name, inst := range before {
		s.forgetSeries(name, inst, insts[name])
	}
	s.retireUnused()
	if n := s.queue.Unpark(); n > 0 {
		s.opts.Logger.Info("write-back: parked roles are retried after the configuration change", "roles", n)
	}
	return nil
}

// forgetSeries deletes the fan-out metric series of instance name that
// old served and now (nil: the instance is gone) no longer does: all of
// them, or those of the remotes it no longer reads from, so that /metrics
// shows only what is configured.
func (s *Set) forgetSeries(name string, old, now *instance) {
	if now == nil {
		fanout.ForgetInstance(s.opts.Registerer, name)
		return
	}
	var gone []string
	for _, r := range old.readFrom {
		if !slices.Contains(now.readFrom, r) {
			gone = append(gone, r)
		}
	}
	fanout.ForgetRemotes(s.opts.Registerer, name, gone...)
}

// retireUnused removes the remotes no served instance uses from the pool
// and closes them once retireGrace has passed (push targets: at Close);
// execution remotes, taken per request, are kept. The roles and push
// decisions status shows for the others become those of the instances now
// served.
// The caller holds reloadMu.
func (s *Set) retireUnused() {
	live := map[*remote][]useMark{}
	s.mu.RLock()
	for _, inst := range s.instances {
		for r, marks := range inst.remotes {
			live[r] = append(live[r], marks...)
		}
	}
	s.mu.RUnlock()
	for r, marks := range live {
		r.resetUses(marks)
	}
	for _, r := range s.pool.retain(live) {
		s.opts.Logger.Info("remote no longer configured; closing it", "remote", r.name)
		if r.target.Load() {
			s.mu.Lock()
			s.retired = append(s.retired, r)
			s.mu.Unlock()
			continue
		}
		time.AfterFunc(retireGrace, func() { _ = r.up.Close() })
	}
}
