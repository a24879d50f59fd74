// Package execution serves the REAPI Execution service and the
// longrunning Operations service for castd, and makes the per-action
// decision of DESIGN §4 at execution time: serve a cached result, run the
// action on the remote execution service (scenario 1), or run it locally
// and record the result through Plan.LocalAC (scenarios 2, 3 and local; in
// scenario 3 that action cache queues the push to the remote cache).
//
// # Operations and sharing
//
// Every Execute gets an operation named "{instance}/operations/{uuid}"
// ("operations/{uuid}" for the empty instance). Identical concurrent
// Executes (same instance and action digest, cache lookup not skipped)
// join the running operation: they get the same name and the same result.
// An execution is detached from the callers: when every caller has gone
// away it still runs to completion and its result is recorded, so a later
// Execute or WaitExecution finds it. Only CancelOperation (or Close) stops
// it: a local run's process group is killed; a remote run's stream is
// cancelled and the remote operation is cancelled too when the Plan gives
// an Operations client. Finished operations answer GetOperation and
// WaitExecution for Config.Retention, at most 10,000 of them.
//
// # Errors
//
// Problems with the request (bad digest, missing Action blob, a platform
// the execution service cannot satisfy, by configuration or learned from
// its FAILED_PRECONDITION for an earlier action) fail the Execute call
// itself.
// Failures of the execution (a timeout, a missing input, an unreachable
// execution service) are reported in the final ExecuteResponse.status, the
// partial result alongside when there is one. A cancelled operation ends
// with Operation.error CANCELLED.
//
// # Digest functions
//
// An Execute's digest function is its digest_function, or when unset the
// function the action digest's length implies (REAPI 2.3; BLAKE3 must be
// named), among Config.DigestFunctions. Everything about the action is in
// that function: its Action, Command, input root and every Directory and
// file below, the action-cache entry and the in-flight sharing key, a local
// run's outputs (see FunctionRunner) and the operation metadata's
// digest_function. In scenario 1 an action other than SHA-256 is sent only
// to an execution service whose Capabilities list its function
// (execution_capabilities.digest_functions, else the deprecated
// digest_function, else SHA-256), with digest_function set; otherwise it is
// the FAILED_PRECONDITION naming both, or a local run with local-fallback.
//
// # Log streams
//
// While an action runs locally (and the Runner is a StreamingRunner), its
// operation's ExecuteOperationMetadata names two log streams,
// "{operation name}/streams/stdout" and ".../streams/stderr". A ByteStream
// Read of either (served through OpenLog, see grpcservers.Options.Logs) returns
// the output as the command produces it and ends when the run has ended.
// Streams live in memory, at most MaxLogStreamBytes each, and are kept
// for a minute after the run. The names can never be blob resource names:
// they have no blobs/{hash}/{size} part and "operations" is reserved in
// instance names. Remote runs (scenario 1) publish no streams: the remote's
// stream names are for the remote's ByteStream, which castd's clients do
// not talk to; their output comes from the result's blobs at the end.
package execution

import (
	"context"
	"sync"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Server implements repb.ExecutionServer and longrunningpb.OperationsServer.
// Create it with New, register it with proxy.Options.Execution and
// RegisterOperations, and Close it before the stores it uses. Safe for
// concurrent use.
type Server struct {
	repb.UnimplementedExecutionServer
	longrunningpb.UnimplementedOperationsServer

	cfg     Config
	ops     *registry
	logs    *logRegistry
	m       *metrics
	learned *learnedPlatforms

	base context.Context
	stop context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var (
	_ repb.ExecutionServer           = (*Server)(nil)
	_ longrunningpb.OperationsServer = (*Server)(nil)
)

// New returns a Server for cfg. It fails if a required field is missing.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	base, stop := context.WithCancel(context.Background())
	return &Server{
		cfg:     cfg,
		ops:     newRegistry(cfg.Clock.Now, cfg.Retention, maxFinished),
		logs:    newLogRegistry(cfg.Clock.Now),
		m:       newMetrics(cfg.Registerer),
		base:    base,
		stop:    stop,
		learned: newLearnedPlatforms(cfg.Clock.Now, LearnedPlatformTTL, maxLearnedPlatforms),
	}, nil
}

// RegisterOperations registers s as the Operations service on r. (The
// Execution service is registered by pkg/proxy from Options.Execution.)
func (s *Server) RegisterOperations(r grpc.ServiceRegistrar) {
	longrunningpb.RegisterOperationsServer(r, s)
}

// Close cancels every running operation and waits until each has finished
// (local processes killed, remote streams closed). Executes arriving later
// fail with UNAVAILABLE. Call it after the gRPC server stopped and before
// the stores close.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
}

// Execute implements repb.ExecutionServer: it validates the request, serves
// a cached result or starts (or joins) an execution, and streams the
// operation until it is done. If the client goes away the execution goes
// on (see the package doc).
func (s *Server) Execute(req *repb.ExecuteRequest, stream grpc.ServerStreamingServer[longrunningpb.Operation]) error {
	o, err := s.begin(stream.Context(), req)
	if err != nil {
		return err
	}
	return o.watch(stream.Context(), stream.Send)
}

// WaitExecution implements repb.ExecutionServer: it streams the operation
// called req.name, running or recently finished, until it is done. An
// unknown or forgotten name is NOT_FOUND.
func (s *Server) WaitExecution(req *repb.WaitExecutionRequest, stream grpc.ServerStreamingServer[longrunningpb.Operation]) error {
	o, err := s.lookupOperation(req.GetName())
	if err != nil {
		return err
	}
	return o.watch(stream.Context(), stream.Send)
}

func (s *Server) lookupOperation(name string) (*operation, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name: an operation name is required")
	}
	o := s.ops.get(name)
	if o == nil {
		return nil, status.Errorf(codes.NotFound, "operation %q is unknown or finished too long ago", name)
	}
	return o, nil
}
