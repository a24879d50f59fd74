package execution

import (
	"context"
	"errors"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/policy"
)

// run executes j for o and finishes o. It is the body of an operation's
// goroutine; ctx ends on CancelOperation or Close.
func (s *Server) run(ctx context.Context, o *operation, j *job) {
	start := s.cfg.Clock.Now()
	resp, outcome := s.decide(ctx, o, j)
	var opErr *status.Status
	if o.wasCancelled() || ctx.Err() != nil {
		opErr, resp = status.New(codes.Canceled, "operation cancelled"), nil
		outcome = outcomeFailed
	}
	s.ops.release(o)
	o.finish(resp, opErr, s.cfg.Clock.Now())
	s.ops.done(o)
	s.m.observe(j.plan.Scenario, outcome, s.cfg.Clock.Now().Sub(start))
}

// decide is DESIGN §4 after the cache lookup: remote execution in scenario
// 1 (falling back to a local run when allowed), a local run otherwise.
func (s *Server) decide(ctx context.Context, o *operation, j *job) (*repb.ExecuteResponse, string) {
	if j.plan.Scenario != policy.ScenarioRemoteExecution {
		return s.local(ctx, o, j, outcomeLocal)
	}
	if j.fallback != "" {
		return s.fallBack(ctx, o, j, "platform")
	}
	resp, err := s.remote(ctx, o, j)
	if err == nil {
		resp.Message = joinMessage(MessageRemoteExecution, resp.GetMessage())
		s.record(ctx, j, resp.GetResult(), status.FromProto(resp.GetStatus()))
		return resp, outcomeOf(resp, outcomeRemote)
	}
	var gap versionGap
	if j.plan.LocalFallback && ctx.Err() == nil && (status.Code(err) == codes.Unavailable || errors.As(err, &gap)) {
		j.fallback = status.Convert(err).Message()
		reason := "unavailable"
		if gap.st != nil {
			reason = gap.reason
		}
		return s.fallBack(ctx, o, j, reason)
	}
	return &repb.ExecuteResponse{Status: status.Convert(err).Proto()}, outcomeFailed
}

// fallBack runs a scenario-1 action locally, logged and counted.
func (s *Server) fallBack(ctx context.Context, o *operation, j *job, reason string) (*repb.ExecuteResponse, string) {
	s.cfg.Logger.Warn("execution: running action locally instead of remotely",
		"action", j.digest, "instance", j.req.GetInstanceName(), "why", j.fallback)
	s.m.fallbacks.WithLabelValues(reason).Inc()
	return s.local(ctx, o, j, outcomeFallback)
}

// local runs j with the Runner and records the result when it may be
// cached (in scenario 3 recording queues the push, see Plan.LocalAC).
func (s *Server) local(ctx context.Context, o *operation, j *job, outcome string) (*repb.ExecuteResponse, string) {
	o.setStage(repb.ExecutionStage_EXECUTING)
	if j.plan.LocalCAS != nil {
		if err := s.fetchInputs(ctx, j); err != nil {
			return &repb.ExecuteResponse{Status: status.Convert(err).Proto()}, outcomeFailed
		}
	}
	res, err := s.runAction(ctx, o, j)
	if err == nil {
		err = s.storeOutputs(ctx, j, res)
	}
	st := status.Convert(err)
	s.record(ctx, j, res, st)
	resp := &repb.ExecuteResponse{Result: res, Message: MessageLocalExecution}
	if outcome == outcomeFallback {
		resp.Message = joinMessage(MessageLocalExecution, "fallback: "+j.fallback)
	}
	if err != nil {
		resp.Status = st.Proto()
	}
	return resp, outcomeOf(resp, outcome)
}

// How a result was obtained, at the start of ExecuteResponse.message (more
// text may follow after ": "). bst prints it; other clients may log it.
const (
	MessageLocalCacheHit   = "local cache hit"
	MessageRemoteCacheHit  = "remote cache hit"
	MessageCacheHit        = "cache hit"
	MessageRemoteExecution = "remote execution"
	MessageLocalExecution  = "local execution"
)

// joinMessage puts castd's phrase before a message from elsewhere.
func joinMessage(phrase, more string) string {
	if more == "" {
		return phrase
	}
	return phrase + ": " + more
}

// outcomeOf is outcome, or failed when the action did not succeed.
func outcomeOf(resp *repb.ExecuteResponse, outcome string) string {
	if resp.GetStatus().GetCode() != int32(codes.OK) || resp.GetResult().GetExitCode() != 0 {
		return outcomeFailed
	}
	return outcome
}

// cacheable reports whether a result may be recorded: the action finished
// (a timeout or any other error never is, since the cached entry would
// be served as a success), the action allows caching, and it exited 0
// unless failures are cached too.
func cacheable(j *job, res *repb.ActionResult, st *status.Status) bool {
	return res != nil && st.Code() == codes.OK && !j.action.GetDoNotCache() &&
		(res.GetExitCode() == 0 || j.plan.CacheFailures)
}

// record stores a cacheable result through Plan.LocalAC. A failure is
// logged, not returned: the client has its result either way.
func (s *Server) record(ctx context.Context, j *job, res *repb.ActionResult, st *status.Status) {
	if !cacheable(j, res, st) {
		return
	}
	if err := j.plan.LocalAC.UpdateActionResult(ctx, j.digest, res); err != nil {
		s.cfg.Logger.Error("execution: cannot record action result locally", "action", j.digest, "err", err)
	}
}
