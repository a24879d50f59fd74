package execution

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// begin validates req and returns the operation the caller should watch:
// a finished one for a cache hit, the running one an identical request
// already started, or a new one.
func (s *Server) begin(ctx context.Context, req *repb.ExecuteRequest) (*operation, error) {
	ad, err := checkRequest(req, s.cfg.DigestFunctions)
	if err != nil {
		return nil, err
	}
	key := ""
	if !req.GetSkipCacheLookup() {
		key = req.GetInstanceName() + "\x00" + ad.Func.String() + "\x00" + ad.String()
		if o := s.ops.running(key); o != nil {
			return o, nil
		}
	}
	plan, err := s.cfg.Resolve(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	action, err := loadAction(ctx, plan.CAS, ad)
	if err != nil {
		return nil, err
	}
	j := &job{req: req, plan: plan, digest: ad, action: action}
	if err := s.checkDialect(ctx, j); err != nil {
		return nil, err
	}
	if key != "" {
		if o := s.cached(ctx, j); o != nil {
			return o, nil
		}
	}
	if err := s.checkPlatform(ctx, j); err != nil {
		return nil, err
	}
	return s.launch(j, key)
}

// cached returns a finished operation holding the cached result for j, or
// nil on a miss. A failing action cache is logged and treated as a miss:
// the action can still be run.
func (s *Server) cached(ctx context.Context, j *job) *operation {
	start := s.cfg.Clock.Now()
	res, how := s.lookup(ctx, j)
	if res == nil {
		return nil
	}
	o := newOperation(s.operationName(j.req.GetInstanceName()), "", j.digest)
	o.finish(&repb.ExecuteResponse{Result: res, CachedResult: true, Message: how}, nil, s.cfg.Clock.Now())
	s.ops.start(o)
	s.ops.done(o)
	s.m.observe(j.plan.Scenario, outcomeCacheHit, s.cfg.Clock.Now().Sub(start))
	return o
}

// lookup asks the local action cache (when the plan has one), then the
// whole pull order, and says where the hit came from. A failing cache is
// logged and treated as a miss: the action can still be run. Both
// lookups are counted as Execute's (fanout.KindExecuteLookup), apart from
// clients' GetActionResult.
func (s *Server) lookup(ctx context.Context, j *job) (*repb.ActionResult, string) {
	ctx = fanout.WithLookupKind(ctx, fanout.KindExecuteLookup)
	how := MessageCacheHit
	if j.plan.LocalLookup != nil {
		if res, err := j.plan.LocalLookup.GetActionResult(ctx, j.digest); err == nil {
			return res, MessageLocalCacheHit
		}
		how = MessageRemoteCacheHit
	}
	res, err := j.plan.AC.GetActionResult(ctx, j.digest)
	if err != nil {
		if status.Code(err) != codes.NotFound {
			s.cfg.Logger.Warn("execution: action cache lookup failed; executing", "action", j.digest, "err", err)
		}
		return nil, ""
	}
	return res, how
}

// checkPlatform decides early whether a scenario-1 action's platform can
// be satisfied remotely, by the configured list (Plan.UnsupportedPlatform)
// and by what the execution service refused earlier: if not, the action
// runs locally when local fallback is allowed, and fails with
// FAILED_PRECONDITION naming the property otherwise. The platform is only
// read when something could match it.
func (s *Server) checkPlatform(ctx context.Context, j *job) error {
	if j.plan.Scenario != policy.ScenarioRemoteExecution ||
		(j.plan.UnsupportedPlatform == nil && !s.learned.any(learnedInstance(j))) {
		return nil
	}
	p, err := platformOf(ctx, j)
	if err != nil {
		return err
	}
	why, err := s.refusal(j, p)
	if err != nil && j.plan.LocalFallback {
		j.fallback = why
		return nil
	}
	return err
}

// refusal returns the early FAILED_PRECONDITION for p, and why as a
// fallback reason, or nil when p may be tried remotely.
func (s *Server) refusal(j *job, p *repb.Platform) (why string, err error) {
	if check := j.plan.UnsupportedPlatform; check != nil {
		if property, bad := check(p); bad {
			return "platform property " + property + " unsupported remotely", unsupportedPlatform(property)
		}
	}
	if e, ok := s.learned.lookup(learnedInstance(j), p); ok {
		return "platform " + e.what + " unsupported remotely (learned: " + e.answer + ")", e.err()
	}
	return "", nil
}

// platformOf returns the action's platform: Action.platform, or
// Command.platform for REAPI 2.0 clients that do not set the former.
func platformOf(ctx context.Context, j *job) (*repb.Platform, error) {
	if p := j.action.GetPlatform(); p != nil {
		return p, nil
	}
	cmd := &repb.Command{}
	cd, _ := digest.FromProtoIn(j.digest.Func, j.action.GetCommandDigest())
	if err := readMessage(ctx, j.plan.CAS, cd, cmd); err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, store.MissingBlobsError("the CAS (the Command)", []digest.Digest{cd})
		}
		return nil, err
	}
	//lint:ignore SA1019 REAPI 2.0 clients (Debian's Bazel 4.2.3) set only Command.platform.
	return cmd.GetPlatform(), nil
}

// operationName returns a new unique operation name under instance.
func (s *Server) operationName(instance string) string {
	if instance == "" {
		return "operations/" + uuid.NewString()
	}
	return instance + "/operations/" + uuid.NewString()
}

// launch registers a new operation for j (or returns the running one an
// identical request registered meanwhile) and runs it in the background,
// detached from the caller's context.
func (s *Server) launch(j *job, key string) (*operation, error) {
	ctx, cancel := context.WithCancel(s.base)
	o := newOperation(s.operationName(j.req.GetInstanceName()), key, j.digest)
	o.cancel = cancel
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cancel()
		return nil, status.Error(codes.Unavailable, "castd is shutting down")
	}
	if existing := s.ops.start(o); existing != nil {
		cancel()
		return existing, nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		s.run(ctx, o, j)
	}()
	return o, nil
}
