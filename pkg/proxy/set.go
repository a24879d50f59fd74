package proxy

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/writeback"

	"github.com/castd/castd/pkg/store/disk"
)

// Set is the storage of every known instance name over one local store
// and the configured remotes. It implements grpcservers.Backend. Safe for
// concurrent use.
type Set struct {
	cfg      atomic.Pointer[policy.Config] // replaced by Reload
	local    *disk.Store
	opts     Options
	pool     *pool
	queue    *writeback.Queue
	counters *fanout.Counters // CAS reads, all instances
	acCount  *fanout.Counters // action cache reads, all instances
	projects *disk.Records
	assetIdx asset.Index // the local asset index, shared by all instances

	reloadMu sync.Mutex // serializes Reload and RegisterProject's bind

	mu        sync.RWMutex
	instances map[string]*instance
	warned    map[string]bool
	retired   []*remote // push targets a reload removed: the queue may still push to them until Close

	stopExpiry chan struct{} // closed by Close: ends the registration-ttl sweep
	closeOnce  sync.Once
}

// config is the configuration in force.
func (s *Set) config() *policy.Config { return s.cfg.Load() }

// Config returns the configuration in force, which Reload replaces. The
// caller must not modify it.
func (s *Set) Config() *policy.Config { return s.config() }

// New builds the instances "" (global user remotes) and one per static
// `projects:` name, restores the projects registered in earlier runs, and
// starts the write-back queue (reloading its pending entries). Remotes are
// dialed lazily: one that is down does not fail New, but an unusable
// configuration (an unreadable certificate) does. Close the Set before the
// store.
func New(ctx context.Context, cfg *policy.Config, local *disk.Store, opts Options) (*Set, error) {
	opts = opts.withDefaults()
	s := &Set{
		local: local, opts: opts, pool: newPool(opts, cfg.Cache.Remotes),
		counters: fanout.NewCounters(), acCount: fanout.NewCounters(),
		projects:  local.Records("projects"),
		assetIdx:  asset.NewLocalIndex(local.Records("assets"), asset.LocalOptions{Logger: opts.Logger}),
		instances: map[string]*instance{}, warned: map[string]bool{},
		stopExpiry: make(chan struct{}),
	}
	s.cfg.Store(cfg)
	wopts := writebackOptions(cfg.Cache.Push)
	wopts.Registerer, wopts.Logger = opts.Registerer, opts.Logger
	q, err := writeback.Open(local.Records("writeback"), local, local.ActionCache, wopts)
	if err != nil {
		return nil, err
	}
	s.queue = q
	insts, err := s.buildStatic(ctx, cfg)
	if err != nil {
		q.Close(0)
		s.pool.close()
		return nil, err
	}
	s.instances = insts
	s.restoreProjects(ctx, s.instances)
	q.Start()
	go s.sweepRegistrations()
	return s, nil
}

// buildStatic builds "" and the configured project names of cfg.
func (s *Set) buildStatic(ctx context.Context, cfg *policy.Config) (map[string]*instance, error) {
	insts := map[string]*instance{}
	if err := s.bindInto(ctx, insts, "", policy.Resolve(cfg, nil), nil); err != nil {
		return nil, err
	}
	for name := range cfg.Projects {
		if err := s.bindInto(ctx, insts, name, policy.Resolve(cfg, &policy.Project{Name: name}), nil); err != nil {
			return nil, err
		}
	}
	return insts, nil
}

// bind builds the storage of r and serves it as instance name; reg is the
// project registration it serves (nil for configured names).
func (s *Set) bind(ctx context.Context, name string, r *policy.Resolved, reg *registration) error {
	s.logWarnings(r.Warnings)
	inst, err := s.build(ctx, name, r)
	if err != nil {
		return err
	}
	s.setRegistration(inst, reg)
	s.mu.Lock()
	old := s.instances[name]
	s.instances[name] = inst
	s.mu.Unlock()
	if old != nil {
		s.forgetSeries(name, old, inst)
	}
	return nil
}

// bindInto builds the storage of r into insts as instance name, which
// is not yet served.
func (s *Set) bindInto(ctx context.Context, insts map[string]*instance, name string, r *policy.Resolved, reg *registration) error {
	s.logWarnings(r.Warnings)
	inst, err := s.build(ctx, name, r)
	if err != nil {
		return err
	}
	s.setRegistration(inst, reg)
	insts[name] = inst
	return nil
}

func (s *Set) logWarnings(ws []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws {
		if !s.warned[w] {
			s.warned[w] = true
			s.opts.Logger.Warn(w)
		}
	}
}

func (s *Set) lookup(instanceName string) (*instance, error) {
	s.mu.RLock()
	inst, ok := s.instances[instanceName]
	s.mu.RUnlock()
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unknown instance name %q: register the project first (bst remotes --project DIR)", instanceName)
	}
	if inst.reg != nil {
		inst.touch(s.opts.Clock.Now())
	}
	return inst, nil
}

// CAS implements grpcservers.Backend: the fan-out of instanceName, or
// INVALID_ARGUMENT for a name that is neither configured nor registered.
func (s *Set) CAS(_ context.Context, instanceName string) (store.CAS, error) {
	inst, err := s.lookup(instanceName)
	if err != nil {
		return nil, err
	}
	return inst.cas, nil
}

// ActionCache implements grpcservers.Backend.
func (s *Set) ActionCache(_ context.Context, instanceName string) (store.ActionCache, error) {
	inst, err := s.lookup(instanceName)
	if err != nil {
		return nil, err
	}
	return inst.ac, nil
}

// Close drains the write-back queue until ctx is done (what is left stays
// persisted for the next start; see writeback.Queue.CloseContext) and
// closes the remote connections. Call it after the gRPC server has stopped
// and before the store is closed.
func (s *Set) Close(ctx context.Context) {
	s.closeOnce.Do(func() { close(s.stopExpiry) })
	s.expireRegistrations() // and persist when each was last used
	if left := s.queue.CloseContext(ctx); left > 0 {
		s.opts.Logger.Info("write-back: entries left for the next start", "entries", left)
	}
	s.pool.close()
	s.mu.Lock()
	retired := s.retired
	s.retired = nil
	s.mu.Unlock()
	for _, r := range retired {
		_ = r.up.Close()
	}
}
