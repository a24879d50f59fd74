//lint:file-ignore SA1019 REAPI 2.0 servers read output_files, output_directories and Command.platform; bst sets them beside the 2.1/2.2 fields
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"

	longrunning "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// maxResumes bounds how often a broken Execute stream is resumed with
// WaitExecution.
const maxResumes = 3

// run is bst run: upload, Execute while relaying the action's output, print
// what was not relayed, write outputs, exit with the action's code.
func (a *app) run(ctx context.Context, o runOptions, args []string) error {
	if err := validateRun(o); err != nil {
		return err
	}
	cas, instance, err := a.casFor(ctx, o.target)
	if err != nil {
		return err
	}
	inputAbs, err := filepath.Abs(o.input)
	if err != nil {
		return err
	}
	wd := workingDir(inputAbs)
	actionDigest, err := a.uploadAction(ctx, cas, o, inputAbs, wd, args)
	if err != nil {
		return err
	}
	relay := a.newLogRelay(ctx)
	resp, err := a.execute(ctx, instance, actionDigest, o.noCache, relay)
	if err != nil {
		relay.stop()
		return fmt.Errorf("execute %s: %s", actionDigest, withEnvHint(message(err)))
	}
	return a.finishRun(ctx, cas, resp, relay.wait(), actionDigest, filepath.Join(inputAbs, filepath.FromSlash(wd)), o.outputs)
}

// uploadAction uploads the input tree, Command and Action; it returns the
// Action's digest.
func (a *app) uploadAction(ctx context.Context, cas store.CAS, o runOptions, inputAbs, wd string, args []string) (digest.Digest, error) {
	cmd, err := buildCommand(args, o.env, o.outputs, o.platform, wd)
	if err != nil {
		return digest.Digest{}, err
	}
	root, err := a.uploadInput(ctx, cas, inputAbs, outputsUnder(wd, o.outputs))
	if err != nil {
		return digest.Digest{}, err
	}
	cd, err := localexec.PutMessage(ctx, cas, cmd)
	if err != nil {
		return digest.Digest{}, err
	}
	return localexec.PutMessage(ctx, cas, buildAction(cd, root, cmd.GetPlatform(), o.timeout))
}

// uploadInput uploads dir (filtered by its .bstignore, and without the
// exclude paths) and returns the root Directory's digest.
func (a *app) uploadInput(ctx context.Context, cas store.CAS, dir string, exclude []string) (digest.Digest, error) {
	staged, cleanup, err := stageInput(dir, exclude)
	if err != nil {
		return digest.Digest{}, err
	}
	defer cleanup()
	m := a.newMeter("uploaded", treeSize([]string{staged}))
	defer m.finish()
	return localexec.UploadDir(ctx, withMeter(cas, m), staged)
}

// outputsUnder turns output paths, relative to the working directory wd,
// into paths relative to the input root.
func outputsUnder(wd string, outputs []string) []string {
	out := make([]string, len(outputs))
	for i, o := range outputs {
		out[i] = path.Join(wd, o)
	}
	return out
}

// execute calls Execute and follows the operation to its end, resuming a
// dropped stream with WaitExecution; relay starts on the log streams the
// operation names.
func (a *app) execute(ctx context.Context, instance string, action digest.Digest, noCache bool, relay *logRelay) (*repb.ExecuteResponse, error) {
	exec := a.conn.execution()
	stream, err := exec.Execute(ctx, &repb.ExecuteRequest{
		InstanceName: instance, ActionDigest: action.Proto(), SkipCacheLookup: noCache,
		DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return nil, err
	}
	name := ""
	for resumes := 0; ; resumes++ {
		resp, opName, err := a.follow(stream, relay)
		if opName != "" {
			name = opName
		}
		if err == nil || name == "" || resumes == maxResumes || status.Code(err) != codes.Unavailable {
			return resp, err
		}
		if stream, err = exec.WaitExecution(ctx, &repb.WaitExecutionRequest{Name: name}); err != nil {
			return nil, err
		}
	}
}

// operationStream is what Execute and WaitExecution return.
type operationStream interface {
	Recv() (*longrunning.Operation, error)
}

// follow reads operations until one is done, reporting stage changes and
// starting relay on log streams, and returns its response and the
// operation name.
func (a *app) follow(stream operationStream, relay *logRelay) (*repb.ExecuteResponse, string, error) {
	name, stage := "", repb.ExecutionStage_UNKNOWN
	for {
		op, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, name, status.Error(codes.Unavailable, "castd closed the Execute stream before the operation finished")
		}
		if err != nil {
			return nil, name, err
		}
		name = op.GetName()
		var md repb.ExecuteOperationMetadata
		if op.GetMetadata().UnmarshalTo(&md) == nil && md.GetStage() != stage {
			stage = md.GetStage()
			a.note("%s", stageText(stage))
		}
		relay.start(&md)
		if !op.GetDone() {
			continue
		}
		if e := op.GetError(); e != nil {
			return nil, name, status.ErrorProto(e)
		}
		var resp repb.ExecuteResponse
		if err := op.GetResponse().UnmarshalTo(&resp); err != nil {
			return nil, name, fmt.Errorf("castd sent an unreadable ExecuteResponse: %w", err)
		}
		return &resp, name, nil
	}
}

func stageText(s repb.ExecutionStage_Value) string {
	return map[repb.ExecutionStage_Value]string{
		repb.ExecutionStage_QUEUED:    "queued",
		repb.ExecutionStage_EXECUTING: "executing",
	}[s]
}

// note prints a status line on stderr unless --quiet; empty lines are
// skipped.
func (a *app) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if a.quiet || msg == "" {
		return
	}
	outputMu.Lock()
	defer outputMu.Unlock()
	fmt.Fprintf(a.stderr, "bst: %s\n", msg)
}
