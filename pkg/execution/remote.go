package execution

import (
	"context"
	"errors"
	"io"
	"time"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// maxResumes is how many times in a row a remote stream that broke without
// progress is resumed (or, before the remote named its operation,
// restarted) before the error is final.
const maxResumes = 3

// remote runs j on the execution service: inputs are made present in its
// CAS, then Execute (of j's REAPI 2.1 form when j speaks 2.0 and the
// service accepts only 2.1+, see bridged, with the result translated back
// for the client); if the remote reports inputs missing anyway, they are
// uploaded once more and the action retried once. An action whose digest
// function the service does not advertise is not sent (see checkFunction).
func (s *Server) remote(ctx context.Context, o *operation, j *job) (*repb.ExecuteResponse, error) {
	if err := checkFunction(ctx, j); err != nil {
		return nil, err
	}
	ds, err := actionBlobs(ctx, j.plan.CAS, j)
	if err == nil {
		err = copyMissing(ctx, j.plan.CAS, j.plan.RemoteCAS, ds)
	}
	var cmd20 *repb.Command
	rj := j
	if err == nil {
		rj, cmd20, err = s.bridged(ctx, j)
	}
	if err != nil {
		return nil, err
	}
	resp, err := s.askRemoteRetrying(ctx, o, j, rj)
	if err != nil || cmd20 == nil || resp.GetResult() == nil {
		return resp, err
	}
	if resp.Result, err = bridgeResult(cmd20, resp.GetResult()); err != nil {
		return nil, err
	}
	return resp, nil
}

// askRemoteRetrying is askRemote for rj (j, or its bridged form); if the
// remote reports inputs missing, they are uploaded from j's CAS once more
// and the action retried once.
func (s *Server) askRemoteRetrying(ctx context.Context, o *operation, j, rj *job) (*repb.ExecuteResponse, error) {
	resp, err := s.askRemote(ctx, o, rj)
	missing := missingIn(j.digest.Func, err)
	if err == nil {
		missing = missingIn(j.digest.Func, status.FromProto(resp.GetStatus()).Err())
	}
	if len(missing) == 0 {
		return resp, err
	}
	s.cfg.Logger.Info("execution: remote reports inputs missing; uploading and retrying once", "action", j.digest, "missing", len(missing))
	if err := transfer(ctx, j.plan.CAS, j.plan.RemoteCAS, missing); err != nil {
		return nil, err
	}
	return s.askRemote(ctx, o, rj)
}

// missingIn returns the blobs the MISSING violations of err name, as
// digests of fn, the action's function: every blob of an action is of its
// function, and a service may leave the function out of a subject
// ("blobs/{hash}/{size}"), which would otherwise read a BLAKE3 hash as a
// SHA-256 one.
func missingIn(fn digest.Function, err error) []digest.Digest {
	missing := store.MissingBlobsIn(err)
	for i, d := range missing {
		if inFn, err := digest.NewIn(fn, d.Hash, d.Size); err == nil {
			missing[i] = inFn
		}
	}
	return missing
}

// askRemote is remoteOnce, learning from a refusal: a FAILED_PRECONDITION
// (as the call's error or the response's status) that lists no missing
// blobs marks the action's platform as one the execution service cannot
// satisfy (see learnedPlatforms).
func (s *Server) askRemote(ctx context.Context, o *operation, j *job) (*repb.ExecuteResponse, error) {
	resp, err := s.remoteOnce(ctx, o, j)
	answer := err
	if err == nil {
		answer = status.FromProto(resp.GetStatus()).Err()
	}
	if status.Code(answer) == codes.FailedPrecondition {
		s.learnPlatform(ctx, j, answer)
	}
	return resp, err
}

// remoteOnce calls Execute on the remote and follows the operation to the
// end, resuming a dropped stream with WaitExecution.
func (s *Server) remoteOnce(ctx context.Context, o *operation, j *job) (*repb.ExecuteResponse, error) {
	f := &follower{o: o}
	failures := 0
	for {
		stream, err := s.openRemote(ctx, j, f.name)
		if err == nil {
			var resp *repb.ExecuteResponse
			if resp, err = f.follow(stream); err == nil {
				return resp, nil
			}
		}
		if ctx.Err() != nil {
			s.cancelRemote(j, f.name)
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if f.progressed {
			failures, f.progressed = 0, false
		}
		if !resumable(err, f.name) || failures >= maxResumes {
			return nil, err
		}
		if status.Code(err) == codes.NotFound {
			f.name = "" // the remote forgot the operation: start again
		}
		if err := s.cfg.Clock.Sleep(ctx, resumeDelay<<failures); err != nil {
			continue // ctx ended: handled at the top of the next round
		}
		failures++
	}
}

// openRemote starts the remote execution, or resumes watching it once the
// remote has named its operation.
func (s *Server) openRemote(ctx context.Context, j *job, name string) (grpc.ServerStreamingClient[longrunningpb.Operation], error) {
	if name != "" {
		return j.plan.RemoteExec.WaitExecution(ctx, &repb.WaitExecutionRequest{Name: name})
	}
	req := j.req
	fn := req.GetDigestFunction() // SHA-256 requests go as the client sent them
	if j.digest.Func != digest.SHA256 {
		fn = j.digest.Func.Proto() // named even when the client let it be inferred
	}
	return j.plan.RemoteExec.Execute(ctx, &repb.ExecuteRequest{
		InstanceName:       j.plan.RemoteInstance,
		ActionDigest:       req.GetActionDigest(),
		SkipCacheLookup:    req.GetSkipCacheLookup(),
		ExecutionPolicy:    req.GetExecutionPolicy(),
		ResultsCachePolicy: req.GetResultsCachePolicy(),
		DigestFunction:     fn,
	})
}

// checkFunction is the versionGap of an action whose digest function the
// execution service does not advertise (see serviceFunctions): castd never
// sends a service a function it did not offer. SHA-256 actions are sent as
// before, without asking (REAPI's default, which every service takes); for
// others, a service without Plan.RemoteCapabilities is taken to offer
// SHA-256 only.
func checkFunction(ctx context.Context, j *job) error {
	fn := j.digest.Func
	if fn == digest.SHA256 {
		return nil
	}
	offered := digest.SetOf(digest.SHA256)
	if j.plan.RemoteCapabilities != nil {
		caps, err := j.plan.RemoteCapabilities(ctx)
		if err != nil {
			return err
		}
		offered = serviceFunctions(caps)
	}
	if offered.Has(fn) {
		return nil
	}
	names := offered.String()
	if names == "" {
		names = "none castd verifies"
	}
	return versionGap{status.Newf(codes.FailedPrecondition,
		"execution: the action's digest function is %s, and the execution service offers only %s (execution_capabilities.digest_functions)",
		fn, names), gapDigestFunction}
}

// serviceFunctions returns the digest functions an execution service with
// capabilities caps takes: execution_capabilities.digest_functions, or the
// deprecated digest_function when that list is empty, or SHA-256 when that
// is unset too (REAPI's default). Functions castd cannot verify are left
// out.
func serviceFunctions(caps *repb.ServerCapabilities) digest.FunctionSet {
	ec := caps.GetExecutionCapabilities()
	if fs := ec.GetDigestFunctions(); len(fs) > 0 {
		return digest.SetFromProtos(fs)
	}
	if f := ec.GetDigestFunction(); f != repb.DigestFunction_UNKNOWN {
		return digest.SetFromProtos([]repb.DigestFunction_Value{f})
	}
	return digest.SetOf(digest.SHA256)
}

// resumable reports whether a broken remote stream is worth another try:
// the remote or the network was unavailable, the stream stalled, or a
// known operation was forgotten by a restarted remote.
func resumable(err error, name string) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	case codes.NotFound:
		return name != ""
	}
	return false
}

// cancelRemote asks the remote to cancel operation name, best effort.
func (s *Server) cancelRemote(j *job, name string) {
	if name == "" || j.plan.RemoteOperations == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := j.plan.RemoteOperations.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name}); err != nil {
		s.cfg.Logger.Warn("execution: cannot cancel remote operation", "operation", name, "err", err)
	}
}

// follower reads one remote operation stream, mirroring its stage onto the
// local operation and remembering the remote operation's name.
type follower struct {
	o          *operation
	name       string
	progressed bool
}

// follow reads stream until the operation is done and returns its
// response. A stream that ends early is UNAVAILABLE, so it is resumed.
func (f *follower) follow(stream grpc.ServerStreamingClient[longrunningpb.Operation]) (*repb.ExecuteResponse, error) {
	for {
		op, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, status.Error(codes.Unavailable, "remote operation stream ended before the operation was done")
		}
		if err != nil {
			return nil, err
		}
		f.progressed = true
		if op.GetName() != "" {
			f.name = op.GetName()
		}
		if op.GetDone() {
			return doneResponse(op)
		}
		md := &repb.ExecuteOperationMetadata{}
		if op.GetMetadata().UnmarshalTo(md) == nil && md.GetStage() != repb.ExecutionStage_UNKNOWN && md.GetStage() != repb.ExecutionStage_COMPLETED {
			f.o.setStage(md.GetStage())
		}
	}
}

// doneResponse extracts the ExecuteResponse of a finished remote operation;
// an operation error becomes the returned error.
func doneResponse(op *longrunningpb.Operation) (*repb.ExecuteResponse, error) {
	if e := op.GetError(); e != nil {
		return nil, status.ErrorProto(e)
	}
	resp := &repb.ExecuteResponse{}
	if err := op.GetResponse().UnmarshalTo(resp); err != nil {
		return nil, status.Errorf(codes.Internal, "remote operation %s: response is not an ExecuteResponse: %v", op.GetName(), err)
	}
	return resp, nil
}
