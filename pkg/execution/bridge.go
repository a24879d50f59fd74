//lint:file-ignore SA1019 bridging reads and writes the REAPI 2.0 output fields, deprecated since 2.1

package execution

import (
	"bytes"
	"context"
	"slices"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	smpb "github.com/bazelbuild/remote-apis/build/bazel/semver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// outputPathsVersion is the REAPI version that introduced Command.output_paths
// and ActionResult.output_symlinks (and deprecated the 2.0 fields).
var outputPathsVersion = &smpb.SemVer{Major: 2, Minor: 1}

// speaks20 reports whether cmd is a REAPI 2.0 Command: it lists outputs only
// in output_files and output_directories. A Command without any output is
// valid in every dialect and needs no bridge.
func speaks20(cmd *repb.Command) bool {
	return len(cmd.GetOutputPaths()) == 0 && len(cmd.GetOutputFiles())+len(cmd.GetOutputDirectories()) > 0
}

// versionBefore reports whether a is an older REAPI version than b.
func versionBefore(a, b *smpb.SemVer) bool {
	if a.GetMajor() != b.GetMajor() {
		return a.GetMajor() < b.GetMajor()
	}
	return a.GetMinor() < b.GetMinor()
}

// acceptsOnly21 reports whether an execution service with capabilities caps
// refuses REAPI 2.0 Commands: its low_api_version is 2.1 or later. A
// service that does not say (no low_api_version, as 2.0-era servers send
// deprecated_api_version only) is taken to accept 2.0.
func acceptsOnly21(caps *repb.ServerCapabilities) bool {
	low := caps.GetLowApiVersion()
	return low != nil && !versionBefore(low, outputPathsVersion)
}

// bridgeCommand returns cmd in the REAPI 2.1 dialect: output_paths is the
// sorted, deduplicated union of output_files and output_directories. The
// 2.0 fields are kept (the specification says a server ignores them when
// output_paths is set), so a service of either age reads the same outputs.
// The 2.0 output directory "" (the whole working directory) has no
// output_paths spelling: FAILED_PRECONDITION naming the version gap.
func bridgeCommand(cmd *repb.Command, serviceLow *smpb.SemVer) (*repb.Command, error) {
	paths := slices.Concat(cmd.GetOutputFiles(), cmd.GetOutputDirectories())
	if slices.Contains(paths, "") {
		return nil, versionGap{status.Newf(codes.FailedPrecondition,
			"execution: the Command (REAPI 2.0) lists the whole working directory (output_directories entry \"\"), "+
				"which REAPI 2.1 output_paths cannot express, and the execution service accepts only API %d.%d and later",
			serviceLow.GetMajor(), serviceLow.GetMinor()), gapAPIVersion}
	}
	slices.Sort(paths)
	out := proto.Clone(cmd).(*repb.Command)
	out.OutputPaths = slices.Compact(paths)
	return out, nil
}

// versionGap is the FAILED_PRECONDITION of an action the execution service
// cannot be sent: its Command cannot be expressed in the service's API
// versions, or its digest function is not one the service advertises.
// With local-fallback the action runs locally instead; reason is the
// fallback metric's label.
type versionGap struct {
	st     *status.Status
	reason string // gapAPIVersion or gapDigestFunction
}

// Reasons of a versionGap, as castd_execution_local_fallback_total labels.
const (
	gapAPIVersion     = "api-version"
	gapDigestFunction = "digest-function"
)

func (v versionGap) Error() string { return v.st.Err().Error() }

// GRPCStatus makes the gap its FAILED_PRECONDITION to status.Convert.
func (v versionGap) GRPCStatus() *status.Status { return v.st }

// bridgeResult returns res, produced by running the 2.1 form of cmd, in the
// form a REAPI 2.0 client of cmd reads: symlinks move from output_symlinks
// (2.1 only, so emptied) into output_file_symlinks or
// output_directory_symlinks by the field that listed them; an output the
// client listed as a file that came back as a directory, or the other way
// round, is the FAILED_PRECONDITION the specification prescribes.
func bridgeResult(cmd *repb.Command, res *repb.ActionResult) (*repb.ActionResult, error) {
	dirs := map[string]bool{}
	for _, d := range cmd.GetOutputDirectories() {
		dirs[d] = true
	}
	out := proto.Clone(res).(*repb.ActionResult)
	for _, f := range out.GetOutputFiles() {
		if dirs[f.GetPath()] {
			return nil, wrongKind(f.GetPath(), "output_directories", "a file")
		}
	}
	for _, d := range out.GetOutputDirectories() {
		if !dirs[d.GetPath()] {
			return nil, wrongKind(d.GetPath(), "output_files", "a directory")
		}
	}
	fileLinks, dirLinks := out.GetOutputFileSymlinks(), out.GetOutputDirectorySymlinks()
	for _, l := range out.GetOutputSymlinks() {
		switch {
		case dirs[l.GetPath()] && !hasLink(dirLinks, l.GetPath()):
			dirLinks = append(dirLinks, l)
		case !dirs[l.GetPath()] && !hasLink(fileLinks, l.GetPath()):
			fileLinks = append(fileLinks, l)
		}
	}
	out.OutputFileSymlinks, out.OutputDirectorySymlinks, out.OutputSymlinks = fileLinks, dirLinks, nil
	return out, nil
}

func hasLink(ls []*repb.OutputSymlink, p string) bool {
	return slices.ContainsFunc(ls, func(l *repb.OutputSymlink) bool { return l.GetPath() == p })
}

func wrongKind(p, field, got string) error {
	return status.Errorf(codes.FailedPrecondition, "execution: output %q is listed in the Command's %s but the action produced %s", p, field, got)
}

// bridged returns the job to send to the execution service in place of j:
// j itself, or, when j's Command speaks REAPI 2.0 and the service accepts
// only 2.1 and later, a job for a new Action whose Command lists
// output_paths. The new Command and Action are stored in the service's CAS
// (Plan.RemoteCAS); the client's Action stays as it was, and the result is
// recorded under the client's digest (see remote). The new Command and
// Action are hashed with j's digest function. The second result is the
// client's Command when bridging, nil otherwise. A Command the service's
// versions cannot express is a versionGap error (see bridgeCommand, tooNew).
func (s *Server) bridged(ctx context.Context, j *job) (*job, *repb.Command, error) {
	if j.plan.RemoteCapabilities == nil {
		return j, nil, nil
	}
	cmd := readCommand(ctx, j)
	if cmd == nil || (!speaks20(cmd) && len(cmd.GetOutputPaths()) == 0) {
		return j, nil, nil
	}
	caps, err := j.plan.RemoteCapabilities(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := tooNew(cmd, caps); err != nil || !speaks20(cmd) || !acceptsOnly21(caps) {
		return j, nil, err
	}
	cmd21, err := bridgeCommand(cmd, caps.GetLowApiVersion())
	if err != nil {
		return nil, nil, err
	}
	fn := j.digest.Func
	action := proto.Clone(j.action).(*repb.Action)
	if action.CommandDigest, err = putMessage(ctx, j.plan.RemoteCAS, fn, cmd21); err != nil {
		return nil, nil, err
	}
	ad, err := putMessage(ctx, j.plan.RemoteCAS, fn, action)
	if err != nil {
		return nil, nil, err
	}
	req := proto.Clone(j.req).(*repb.ExecuteRequest)
	req.ActionDigest = ad
	d, _ := digest.FromProtoIn(fn, ad)
	s.cfg.Logger.Debug("execution: bridging a REAPI 2.0 Command for the execution service", "action", j.digest, "bridged", d)
	return &job{req: req, plan: j.plan, digest: d, action: action}, cmd, nil
}

// putMessage stores m's wire form in cas and returns its digest under fn.
func putMessage(ctx context.Context, cas store.CAS, fn digest.Function, m proto.Message) (*repb.Digest, error) {
	d, b, err := digest.OfMessageIn(fn, m)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "execution: encode %T: %v", m, err)
	}
	if err := cas.Put(ctx, d, bytes.NewReader(b)); err != nil {
		return nil, err
	}
	return d.Proto(), nil
}

// checkDialect refuses a REAPI 2.0 Command when the Server serves 2.1 and
// later only (Config.OutputPathsOnly). A Command that cannot be read is
// left to the run to report, as without the option.
func (s *Server) checkDialect(ctx context.Context, j *job) error {
	if !s.cfg.OutputPathsOnly {
		return nil
	}
	if cmd := readCommand(ctx, j); cmd == nil || !speaks20(cmd) {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition,
		"execution: API version 2.0 is not supported: the Command lists its outputs in output_files/output_directories, "+
			"and this service accepts only API %d.%d and later (output_paths)", outputPathsVersion.GetMajor(), outputPathsVersion.GetMinor())
}

// readCommand returns j's Command, or nil when it cannot be read: the run
// that needs it reports that, as it would without bridging.
func readCommand(ctx context.Context, j *job) *repb.Command {
	cd, err := digest.FromProtoIn(j.digest.Func, j.action.GetCommandDigest())
	cmd := &repb.Command{}
	if err != nil || readMessage(ctx, j.plan.CAS, cd, cmd) != nil {
		return nil
	}
	return cmd
}

// tooNew is the version gap of a Command that lists its outputs only in
// output_paths (REAPI 2.1) sent to a service whose high_api_version is
// older: a 2.0 service would ignore output_paths and return no outputs, and
// the output types needed for the 2.0 fields are unknown before the run.
// A service that does not say (no high_api_version) is not refused.
func tooNew(cmd *repb.Command, caps *repb.ServerCapabilities) error {
	high := caps.GetHighApiVersion()
	if speaks20(cmd) || len(cmd.GetOutputPaths()) == 0 || high == nil || !versionBefore(high, outputPathsVersion) ||
		len(cmd.GetOutputFiles())+len(cmd.GetOutputDirectories()) > 0 {
		return nil
	}
	return versionGap{status.Newf(codes.FailedPrecondition,
		"execution: the Command lists its outputs only in output_paths (REAPI 2.1), and the execution service speaks at most API %d.%d",
		high.GetMajor(), high.GetMinor()), gapAPIVersion}
}
