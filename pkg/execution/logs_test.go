package execution_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"

	"github.com/castd/castd/pkg/grpcservers"
)

// RunStreaming makes countingRunner an execution.StreamingRunner.
func (c *countingRunner) RunStreaming(ctx context.Context, a *repb.Action, stdout, stderr io.Writer) (*repb.ActionResult, error) {
	if err := c.hold(ctx, a); err != nil {
		return nil, err
	}
	return c.r.RunStreaming(ctx, a, stdout, stderr)
}

var _ execution.StreamingRunner = (*countingRunner)(nil)

// streamNames reads operations until one names log streams (or is done)
// and returns its metadata.
func streamNames(t *testing.T, stream grpc.ServerStreamingClient[longrunningpb.Operation]) *repb.ExecuteOperationMetadata {
	t.Helper()
	for {
		op, err := stream.Recv()
		if err != nil {
			t.Fatalf("operation stream: %v", err)
		}
		md := &repb.ExecuteOperationMetadata{}
		if err := op.GetMetadata().UnmarshalTo(md); err != nil {
			t.Fatal(err)
		}
		if md.GetStdoutStreamName() != "" || op.GetDone() {
			return md
		}
	}
}

// readLog reads a log stream from offset to its end: what arrived and the
// final status.
func readLog(t *testing.T, bs bspb.ByteStreamClient, name string, offset int64) (string, error) {
	t.Helper()
	r, err := bs.Read(testutil.Context(t), &bspb.ReadRequest{ResourceName: name, ReadOffset: offset})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		resp, err := r.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		b.Write(resp.GetData())
	}
}

// blobText reads a blob from the node's store.
func (n *node) blobText(t *testing.T, d *repb.Digest) string {
	t.Helper()
	dg, err := digest.FromProto(d)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := n.mem.Get(context.Background(), dg, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogStreamsFollowALocalRun(t *testing.T) {
	t.Log("a client reading the stdout stream gets the first line while the action runs, then EOF, and the same bytes as the blob")
	n := newNode(t, setup{})
	release := filepath.Join(t.TempDir(), "release")
	ad := n.upload(t, `echo first; echo oops >&2; while [ ! -e `+release+` ]; do sleep 0.01; done; echo second; echo done > out.txt`, 0)
	stream, err := n.client.Execute(testutil.Context(t), &repb.ExecuteRequest{ActionDigest: ad.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	md := streamNames(t, stream)
	if !strings.HasSuffix(md.GetStdoutStreamName(), "/streams/stdout") || !strings.HasSuffix(md.GetStderrStreamName(), "/streams/stderr") {
		t.Fatalf("metadata %v: want stdout and stderr stream names", md)
	}
	log, err := n.bs.Read(testutil.Context(t), &bspb.ReadRequest{ResourceName: md.GetStdoutStreamName()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := log.Recv()
	if err != nil || string(first.GetData()) != "first\n" {
		t.Fatalf("first chunk %q, %v; want the first line while the action waits", first.GetData(), err)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest := ""
	for err == nil {
		var resp *bspb.ReadResponse
		if resp, err = log.Recv(); err == nil {
			rest += string(resp.GetData())
		}
	}
	resp, _, opErr := finish(t, stream)
	mustSucceed(t, resp, opErr)
	if !errors.Is(err, io.EOF) || "first\n"+rest != n.blobText(t, resp.GetResult().GetStdoutDigest()) {
		t.Errorf("stream %q then %v; stdout blob %q", "first\n"+rest, err, n.blobText(t, resp.GetResult().GetStdoutDigest()))
	}
	checkAfterTheRun(t, n, ad, md)
}

// checkAfterTheRun covers what a client sees once the run has ended.
func checkAfterTheRun(t *testing.T, n *node, ad digest.Digest, md *repb.ExecuteOperationMetadata) {
	t.Run("complete stream read late", func(t *testing.T) {
		t.Log("a complete stream is kept a while: read from an offset, it ends at once")
		if got, err := readLog(t, n.bs, md.GetStderrStreamName(), 2); err != nil || got != "ps\n" {
			t.Errorf("stderr from 2 = %q, %v; want %q", got, err, "ps\n")
		}
	})
	t.Run("offset past the end", func(t *testing.T) {
		t.Log("reading beyond a complete stream is OUT_OF_RANGE, as for blobs")
		if _, err := readLog(t, n.bs, md.GetStderrStreamName(), 100); status.Code(err) != codes.OutOfRange {
			t.Errorf("read at 100: %v, want OUT_OF_RANGE", err)
		}
	})
	t.Run("unknown stream", func(t *testing.T) {
		t.Log("a stream name of no operation is NOT_FOUND")
		if _, err := readLog(t, n.bs, "operations/no-such-op/streams/stdout", 0); status.Code(err) != codes.NotFound {
			t.Errorf("read: %v, want NOT_FOUND", err)
		}
	})
	t.Run("cache hit has no streams", func(t *testing.T) {
		t.Log("a cached result has nothing to stream: the client prints the blobs")
		stream, err := n.client.Execute(testutil.Context(t), &repb.ExecuteRequest{ActionDigest: ad.Proto()})
		if err != nil {
			t.Fatal(err)
		}
		if md := streamNames(t, stream); md.GetStdoutStreamName() != "" || md.GetStderrStreamName() != "" {
			t.Errorf("cache hit metadata %v: want no stream names", md)
		}
	})
}

func TestLogStreamTruncated(t *testing.T) {
	t.Log("a stream stops at MaxLogStreamBytes and says so; the blob keeps everything")
	n := newNode(t, setup{})
	size := execution.MaxLogStreamBytes + 1000
	ad := n.upload(t, "head -c "+strconv.Itoa(size)+" /dev/zero", 0)
	stream, err := n.client.Execute(testutil.Context(t), &repb.ExecuteRequest{ActionDigest: ad.Proto(), SkipCacheLookup: true})
	if err != nil {
		t.Fatal(err)
	}
	md := streamNames(t, stream)
	resp, _, err := finish(t, stream)
	mustSucceed(t, resp, err)
	got, err := readLog(t, n.bs, md.GetStdoutStreamName(), 0)
	if len(got) != execution.MaxLogStreamBytes || status.Code(err) != codes.OutOfRange || !strings.Contains(err.Error(), "stdout_digest") {
		t.Errorf("read %d bytes, %v; want %d and OUT_OF_RANGE naming stdout_digest", len(got), err, execution.MaxLogStreamBytes)
	}
	if blob := resp.GetResult().GetStdoutDigest().GetSizeBytes(); blob != int64(size) {
		t.Errorf("stdout blob %d bytes, want %d", blob, size)
	}
}

var _ grpcservers.LogStreams = (*execution.Server)(nil)
