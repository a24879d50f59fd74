package proxy

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// ExecutionPlan returns what the execution service needs to decide, per
// action, how to run one of instanceName's actions (DESIGN §4). It has the
// signature of execution.Config.Resolve.
//
// Results are recorded through the instance's action cache, which writes
// locally and durably queues the result for the instance's push-enabled
// action-cache remotes: in scenario 3 that is the action-cache-service
// (blobs first, then the entry), in scenario 2 the read-only service is
// never among them. So the execution service itself never writes to a
// remote action cache. In scenario 1 inputs go to the remote-execution
// storage-service (else cache.storage-service).
func (s *Set) ExecutionPlan(ctx context.Context, instanceName string) (*execution.Plan, error) {
	inst, err := s.lookup(instanceName)
	if err != nil {
		return nil, err
	}
	r := inst.resolved
	p := &execution.Plan{
		Scenario: r.Scenario, CAS: inst.cas, AC: inst.ac, LocalAC: inst.ac, LocalCAS: s.local,
		LocalLookup: fanout.NewHitCountingActionCache(store.NewCompletenessCheckingActionCache(s.local.ActionCache(instanceName), s.local),
			fanout.ACOptions{Registerer: s.opts.Registerer, Instance: instanceName, Counters: s.acCount}),
		LocalFallback:       s.config().LocalExecution.LocalFallback,
		CacheFailures:       s.config().LocalExecution.CacheFailures,
		UnsupportedPlatform: unsupportedBy(s.config().RemotePlatform),
		PrimaryCAS:          inst.primary,
	}
	if r.Scenario != policy.ScenarioRemoteExecution {
		return p, nil
	}
	exec, err := s.pool.get(ctx, executionRemote(r))
	if err != nil {
		return nil, err
	}
	exec.use(ctx, executionRemote(r))
	storage, ok := executionStorage(r)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "instance %q: remote execution has no storage-service", instanceName)
	}
	st, err := s.pool.get(ctx, storage)
	if err != nil {
		return nil, err
	}
	ex := exec.up.Execution()
	p.RemoteExec, p.RemoteInstance, p.RemoteOperations = ex, ex.InstanceName(), ex.Operations()
	p.RemoteCAS = st.cas
	p.RemoteCapabilities = exec.up.Capabilities
	return p, nil
}

// executionRemote is the execution-service as a remote of its own; its
// credentials are its own block's.
func executionRemote(r *policy.Resolved) policy.Remote {
	es := r.RemoteExecution.ExecutionService
	return policy.Remote{URL: es.URL, InstanceName: es.InstanceName, Type: policy.TypeStorage, Role: policy.RoleExecution,
		Origin: originOfExecution(r), Section: policy.BlockExecutionService,
		Auth: es.Auth, ConnectionConfig: es.ConnectionConfig}
}

// originOfExecution says whether the block in force is the global one or a
// per-project override.
func originOfExecution(r *policy.Resolved) policy.Origin {
	for _, c := range r.CAS {
		if c.Section == policy.BlockStorageService {
			return c.Origin
		}
	}
	return policy.OriginUser
}

// executionStorage is the CAS the execution service reads inputs from.
func executionStorage(r *policy.Resolved) (policy.Remote, bool) {
	for _, want := range []policy.Block{policy.BlockStorageService, policy.BlockCacheStorage} {
		for _, c := range r.CAS {
			if c.Section == want {
				return c, true
			}
		}
	}
	return policy.Remote{}, false
}

// unsupportedBy returns a check that reports the first platform property
// whose name remote-platform lists but whose value it does not; nil when
// remote-platform is empty (nothing is known about the service).
func unsupportedBy(known map[string][]string) func(*repb.Platform) (string, bool) {
	if len(known) == 0 {
		return nil
	}
	return func(p *repb.Platform) (string, bool) {
		// REAPI requires properties sorted by name, so the first reported
		// is deterministic; the caller's Action is never reordered.
		for _, prop := range p.GetProperties() {
			vals, listed := known[prop.GetName()]
			if !listed {
				continue
			}
			ok := false
			for _, v := range vals {
				ok = ok || v == prop.GetValue()
			}
			if !ok {
				return prop.GetName() + "=" + prop.GetValue(), true
			}
		}
		return "", false
	}
}
