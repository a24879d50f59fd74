package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// execTimeout bounds the gRPC calls and waits of one execution test.
const execTimeout = 2 * time.Minute

// cluster is a castd on TCP without remote-execution: it runs every action
// it is sent itself, as a remote execution service would.
type cluster struct {
	*castdProc
	addr string    // HOST:PORT of its grpc:// listener
	re   *reClient // direct client over its own socket
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	p, addr := startTCPCastd(t, "")
	return &cluster{castdProc: p, addr: addr, re: newREClient(t, p.socket)}
}

// remoteConn is the connection-config of every workstation remote: fail
// fast, so that a killed cluster is noticed within a second or two.
const remoteConn = "connection-config: {retry-limit: 1, retry-delay: 10, request-timeout: 5}"

// scenario1YAML configures the cluster at addr as execution, storage and
// (read-only) action cache service.
func scenario1YAML(addr string, fallback bool) string {
	return fmt.Sprintf("remote-execution:\n"+
		"  execution-service: {url: grpc://%[1]s, %[2]s}\n"+
		"  storage-service: {url: grpc://%[1]s, %[2]s}\n"+
		"  action-cache-service: {url: grpc://%[1]s, push: false, %[2]s}\n"+
		"local-execution:\n  local-fallback: %[3]v\n", addr, remoteConn, fallback)
}

// remoteCacheYAML configures the cluster at addr as storage and action
// cache service without execution-service: scenario 2 (push false) or 3
// (push true).
func remoteCacheYAML(addr string, push bool) string {
	return fmt.Sprintf("remote-execution:\n"+
		"  storage-service: {url: grpc://%[1]s, %[2]s}\n"+
		"  action-cache-service: {url: grpc://%[1]s, push: %[3]v, %[2]s}\n", addr, remoteConn, push)
}

// reClient is a REAPI client of one castd socket: a gRPC connection for
// Execute, WaitExecution and the action cache, and a CAS for uploads.
type reClient struct {
	conn *grpc.ClientConn
	cas  store.CAS
}

func newREClient(t *testing.T, socket string) *reClient {
	t.Helper()
	r, err := grpcclient.Dial(context.Background(), grpcclient.Config{URL: "unix:" + socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &reClient{conn: dialUnix(t, socket), cas: r.CAS()}
}

// testAction is an action to upload: a shell script over input files.
type testAction struct {
	script  string            // run as sh -c SCRIPT in the input root
	inputs  map[string]string // input file contents by name
	outputs []string          // output_paths
	timeout time.Duration     // Action.timeout; 0 is none
}

// uploaded is an action in a CAS: its digest and every blob Execute needs.
type uploaded struct {
	digest *repb.Digest
	blobs  []*repb.Digest // Action, Command, input root and input files
}

// upload stores a's inputs, Command and Action through c.
func (c *reClient) upload(t *testing.T, a testAction) uploaded {
	t.Helper()
	ctx := ctxFor(t, execTimeout)
	dir := t.TempDir()
	var files []*repb.Digest
	for name, content := range a.inputs {
		writeFile(t, filepath.Join(dir, name), []byte(content))
		files = append(files, blobOf([]byte(content)).d)
	}
	root, err := localexec.UploadDir(ctx, c.cas, dir)
	if err != nil {
		t.Fatalf("uploading the input root: %v", err)
	}
	cmd := &repb.Command{
		Arguments:            []string{"sh", "-c", a.script},
		EnvironmentVariables: []*repb.Command_EnvironmentVariable{{Name: "PATH", Value: "/usr/bin:/bin"}},
		OutputPaths:          a.outputs,
	}
	action, ad, err := localexec.UploadAction(ctx, c.cas, cmd, root, a.timeout)
	if err != nil {
		t.Fatalf("uploading the action: %v", err)
	}
	return uploaded{digest: ad.Proto(), blobs: append([]*repb.Digest{ad.Proto(), action.GetCommandDigest(), root.Proto()}, files...)}
}

// execOutcome is how one Execute (or WaitExecution) stream ended.
type execOutcome struct {
	name string                // the operation's name
	resp *repb.ExecuteResponse // the final response, nil on err
	err  error                 // the stream's error or the operation's error
}

// code is the outcome's gRPC code: the stream or operation error's, else
// the ExecuteResponse status's.
func (o execOutcome) code() codes.Code {
	if o.err != nil {
		return grpcstatus.Code(o.err)
	}
	return codes.Code(o.resp.GetStatus().GetCode())
}

func (o execOutcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("operation %q: error %v", o.name, o.err)
	}
	r := o.resp
	return fmt.Sprintf("operation %q: status %v %q, message %q, cached %v, exit %d, stderr %q",
		o.name, codes.Code(r.GetStatus().GetCode()), r.GetStatus().GetMessage(), r.GetMessage(),
		r.GetCachedResult(), r.GetResult().GetExitCode(), r.GetResult().GetStderrRaw())
}

// ok fails t unless the action ran (or was served) with exit 0 and a
// message starting with how.
func (o execOutcome) ok(t *testing.T, how string) {
	t.Helper()
	if o.code() != codes.OK || o.resp.GetResult().GetExitCode() != 0 || !strings.HasPrefix(o.resp.GetMessage(), how) {
		t.Fatalf("want a successful %q result, got %v", how, o)
	}
}

// output is the digest of the output file at path in o's result.
func (o execOutcome) output(t *testing.T, path string) *repb.Digest {
	t.Helper()
	for _, f := range o.resp.GetResult().GetOutputFiles() {
		if f.GetPath() == path {
			return f.GetDigest()
		}
	}
	t.Fatalf("no output %q in %v", path, o.resp.GetResult())
	return nil
}

// execute runs Execute for d and reads the stream to its end.
func (c *reClient) execute(ctx context.Context, d *repb.Digest) execOutcome {
	stream, err := c.open(ctx, d)
	if err != nil {
		return execOutcome{err: err}
	}
	return follow(stream, "")
}

func (c *reClient) open(ctx context.Context, d *repb.Digest) (grpc.ServerStreamingClient[longrunningpb.Operation], error) {
	return repb.NewExecutionClient(c.conn).Execute(ctx, &repb.ExecuteRequest{ActionDigest: d, DigestFunction: repb.DigestFunction_SHA256})
}

// started opens Execute for d and waits for the stream's first message,
// which names the operation the call started or joined.
func (c *reClient) started(ctx context.Context, d *repb.Digest) (grpc.ServerStreamingClient[longrunningpb.Operation], string, error) {
	stream, err := c.open(ctx, d)
	if err != nil {
		return nil, "", err
	}
	op, err := stream.Recv()
	if err != nil {
		return nil, "", err
	}
	if op.GetDone() {
		return nil, op.GetName(), fmt.Errorf("operation %s was done at once (a cache hit?)", op.GetName())
	}
	return stream, op.GetName(), nil
}

// wait runs WaitExecution for the operation name and reads it to its end.
func (c *reClient) wait(ctx context.Context, name string) execOutcome {
	stream, err := repb.NewExecutionClient(c.conn).WaitExecution(ctx, &repb.WaitExecutionRequest{Name: name})
	if err != nil {
		return execOutcome{name: name, err: err}
	}
	return follow(stream, name)
}

// follow reads an operation stream until the operation is done.
func follow(stream grpc.ServerStreamingClient[longrunningpb.Operation], name string) execOutcome {
	for {
		op, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return execOutcome{name: name, err: errors.New("the stream ended before the operation was done")}
		}
		if err != nil {
			return execOutcome{name: name, err: err}
		}
		name = op.GetName()
		if !op.GetDone() {
			continue
		}
		if e := op.GetError(); e != nil {
			return execOutcome{name: name, err: grpcstatus.ErrorProto(e)}
		}
		resp := &repb.ExecuteResponse{}
		if err := op.GetResponse().UnmarshalTo(resp); err != nil {
			return execOutcome{name: name, err: err}
		}
		return execOutcome{name: name, resp: resp}
	}
}

// actionResult asks c's action cache for d.
func (c *reClient) actionResult(ctx context.Context, d *repb.Digest) (*repb.ActionResult, error) {
	return repb.NewActionCacheClient(c.conn).GetActionResult(ctx, &repb.GetActionResultRequest{
		ActionDigest: d, DigestFunction: repb.DigestFunction_SHA256,
	})
}

// missing is how many of ds c's CAS lacks.
func (c *reClient) missing(t *testing.T, ds ...*repb.Digest) int {
	t.Helper()
	m, err := findMissing(ctxFor(t, execTimeout), c.conn, ds...)
	if err != nil {
		t.Fatalf("FindMissingBlobs: %v", err)
	}
	return len(m)
}

// gate lets an action run only when the test says so: the action appends a
// line to marker when it starts, then waits (at most a minute) for the
// release file. Both live outside any store, so they are shared by every
// castd on the machine and count runs wherever they happen.
type gate struct {
	marker, release string
}

// newGate makes a gate; t's cleanup opens it, so that no action it holds
// (say, one orphaned by a killed castd) outlives the test.
func newGate(t *testing.T) *gate {
	t.Helper()
	dir := t.TempDir()
	g := &gate{marker: filepath.Join(dir, "marker"), release: filepath.Join(dir, "release")}
	t.Cleanup(func() { _ = os.WriteFile(g.release, nil, 0o600) })
	return g
}

// script is the shell snippet that counts a run and then waits for the
// gate to open.
func (g *gate) script() string {
	return fmt.Sprintf("echo run >> %s; i=0; while [ ! -e %s ]; do sleep 0.05; i=$((i+1)); [ $i -lt 1200 ] || exit 99; done",
		g.marker, g.release)
}

// count is the script snippet that only counts a run.
func (g *gate) count() string { return fmt.Sprintf("echo run >> %s", g.marker) }

// open lets every waiting action go on.
func (g *gate) open(t *testing.T) { writeFile(t, g.release, nil) }

// runs is how many times an action passed the marker.
func (g *gate) runs(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(g.marker)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// waitRuns waits until the actions have passed the marker n times.
func (g *gate) waitRuns(t *testing.T, n int) {
	t.Helper()
	testutil.EventuallyWithin(t, execTimeout, fmt.Sprintf("%d run(s) of the action", n), func() bool { return g.runs(t) >= n })
}

// stop stops p with SIGTERM and waits for it to exit, so that its layout
// can be reused.
func (p *castdProc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		p.t.Fatalf("castd exited with %d after SIGTERM\n%s", code, p.logs.String())
	}
}
