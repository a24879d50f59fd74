package execution

import (
	"context"
	"log/slog"
	"time"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
)

// DefaultRetention is Config.Retention when zero.
const DefaultRetention = 10 * time.Minute

// LearnedPlatformTTL is how long a platform the execution service refused
// (FAILED_PRECONDITION not about missing blobs) is remembered as
// unsatisfiable for the instance: later actions with it fail early, or run
// locally with Plan.LocalFallback. At most maxLearnedPlatforms are
// remembered, the oldest forgotten first.
const LearnedPlatformTTL = 10 * time.Minute

const (
	// maxFinished bounds the finished operations kept for Retention.
	maxFinished = 10000
	// maxLearnedPlatforms bounds the platforms remembered as refused.
	maxLearnedPlatforms = 1000
	// resumeDelay is the first wait before resuming a dropped remote
	// stream; it doubles per attempt.
	resumeDelay = 100 * time.Millisecond
)

// Runner runs one action on this machine. *localexec.Runner implements it:
// a non-zero exit is a result; a timeout is the partial result together
// with DEADLINE_EXCEEDED; a cancelled ctx kills the process group and
// returns CANCELED.
type Runner interface {
	Run(ctx context.Context, a *repb.Action) (*repb.ActionResult, error)
}

// Plan is what the per-action decision needs to know about one instance.
// Config.Resolve builds it; the Server itself writes to no remote but
// RemoteCAS in scenario 1 (and PrimaryCAS when set). Scenario 3's push
// happens behind LocalAC.
type Plan struct {
	// Scenario selects what happens on a cache miss (DESIGN §4).
	Scenario policy.Scenario
	// CAS is the instance's CAS for reads: the Action, its Command and
	// inputs, and the source of uploads to remotes (local store or fan-out).
	CAS store.CAS
	// AC is used for lookups: local then remote action caches in pull
	// order, each hit completeness-checked. Never written to.
	AC store.ActionCache
	// LocalLookup, optional, is the local store's action cache alone. When
	// set it is asked before AC, so a hit can be reported as a "local cache
	// hit" rather than a "remote cache hit" in ExecuteResponse.message.
	LocalLookup store.ActionCache
	// LocalAC is where results are recorded: the instance's action cache,
	// never a remote one. In scenario 3 it is the cache that writes locally
	// and durably queues the result for the action-cache-service (blobs
	// first, then the entry), as proxy.Set.ExecutionPlan wires it; the
	// Server makes no push of its own.
	LocalAC store.ActionCache
	// LocalCAS is the store the Runner reads inputs from. When set and
	// different from CAS, inputs are copied from CAS into it before a local
	// run (fetching them from remotes); nil skips that step.
	LocalCAS store.CAS

	// RemoteExec is the execution service (scenario 1); RemoteInstance is
	// put in its requests. RemoteOperations, optional, receives
	// CancelOperation for remote runs that are cancelled here.
	RemoteExec       repb.ExecutionClient
	RemoteInstance   string
	RemoteOperations longrunningpb.OperationsClient
	// RemoteCAS is the execution service's CAS in scenario 1: inputs are
	// uploaded there.
	RemoteCAS store.CAS
	// RemoteCapabilities, optional, returns the execution service's
	// capabilities (cached by the caller; called once per remote run). When
	// set and the service's low_api_version is 2.1 or later, a client's
	// REAPI 2.0 Command is bridged: sent as a new Command with output_paths
	// under a new Action digest, its result translated back and recorded
	// under the client's digest.
	RemoteCapabilities func(context.Context) (*repb.ServerCapabilities, error)
	// PrimaryCAS, optional, is cache.storage-service, the primary store:
	// the outputs of a local run (every blob its result references) are
	// stored there before Execute returns, as client writes are.
	PrimaryCAS store.CAS

	// LocalFallback runs actions locally when the execution service is
	// unreachable, cannot satisfy the action's platform, or accepts only
	// API versions the action's Command cannot be bridged to.
	LocalFallback bool
	// CacheFailures records results with a non-zero exit code too.
	CacheFailures bool
	// UnsupportedPlatform, optional, reports a platform property ("name=value")
	// the execution service is known not to satisfy.
	UnsupportedPlatform func(*repb.Platform) (property string, unsupported bool)
}

// Config configures a Server.
type Config struct {
	// Resolve returns the Plan for an instance name; an unknown instance is
	// an error fit for the client (e.g. INVALID_ARGUMENT). Required.
	Resolve func(ctx context.Context, instance string) (*Plan, error)
	// Runner runs actions locally. Required.
	Runner Runner
	// Logger receives fallbacks and recording failures. Nil: slog.Default().
	Logger *slog.Logger
	// Registerer receives the castd_execution* metrics. Nil: a private one.
	Registerer prometheus.Registerer
	// Clock is the clock for retention and durations. Nil: the wall clock.
	Clock clock.Clock
	// OutputPathsOnly makes this an execution service of REAPI 2.1 and later
	// only (as Buildbarn is): a Command that lists its outputs in the 2.0
	// output_files and output_directories alone is refused with
	// FAILED_PRECONDITION naming the version gap. Pair it with
	// grpcservers.Options.OutputPathsOnly so Capabilities say so.
	OutputPathsOnly bool
	// Retention is how long finished operations answer GetOperation and
	// WaitExecution (at most 10,000 are kept). Zero: DefaultRetention.
	Retention time.Duration
	// DigestFunctions are the digest functions Execute accepts (an
	// ExecuteRequest's digest_function, or the function its action
	// digest's length implies); others are INVALID_ARGUMENT naming
	// digest_function. Pair it with grpcservers.Options.DigestFunctions.
	// Zero: every function castd verifies (digest.AllFunctions).
	DigestFunctions digest.FunctionSet
}

func (c Config) withDefaults() (Config, error) {
	if c.Resolve == nil || c.Runner == nil {
		return c, status.Error(codes.InvalidArgument, "execution: Config.Resolve and Config.Runner are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	c.Clock = clock.OrReal(c.Clock)
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.DigestFunctions == 0 {
		c.DigestFunctions = digest.AllFunctions
	}
	return c, nil
}
