package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
)

// fnBlob is test content with its digest under one function.
type fnBlob struct {
	data []byte
	d    digest.Digest
}

func randomFnBlob(f digest.Function, n int) fnBlob {
	data := make([]byte, n)
	_, _ = rand.Read(data)
	return fnBlob{data: data, d: digest.OfBytesIn(f, data)}
}

// fnFindMissing asks FindMissingBlobs for ds, all of one function, naming
// it in digest_function as a REAPI 2.3 client does.
func fnFindMissing(ctx context.Context, conn *grpc.ClientConn, ds ...digest.Digest) ([]digest.Digest, error) {
	req := &repb.FindMissingBlobsRequest{DigestFunction: ds[0].Func.Proto()}
	for _, d := range ds {
		req.BlobDigests = append(req.BlobDigests, d.Proto())
	}
	resp, err := repb.NewContentAddressableStorageClient(conn).FindMissingBlobs(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, pd := range resp.GetMissingBlobDigests() {
		d, err := digest.FromProtoIn(ds[0].Func, pd)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// fnBatchUpdate uploads blobs of one function in one BatchUpdateBlobs.
func fnBatchUpdate(ctx context.Context, conn *grpc.ClientConn, blobs ...fnBlob) error {
	req := &repb.BatchUpdateBlobsRequest{DigestFunction: blobs[0].d.Func.Proto()}
	for _, b := range blobs {
		req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: b.d.Proto(), Data: b.data})
	}
	resp, err := repb.NewContentAddressableStorageClient(conn).BatchUpdateBlobs(ctx, req)
	if err != nil {
		return err
	}
	for _, r := range resp.GetResponses() {
		if err := grpcStatusErr(r.GetStatus().GetCode(), r.GetStatus().GetMessage()); err != nil {
			return err
		}
	}
	return nil
}

// fnWrite uploads b with ByteStream Write under its function's resource
// name (uploads/{uuid}/blobs/blake3/{hash}/{size} for BLAKE3).
func fnWrite(ctx context.Context, conn *grpc.ClientConn, b fnBlob) error {
	stream, err := bspb.NewByteStreamClient(conn).Write(ctx)
	if err != nil {
		return err
	}
	name := digest.WriteResourceName("", fmt.Sprintf("%x", b.data[:8])+"-0000-4000-8000-000000000000", b.d)
	for off := 0; ; {
		end := min(off+writeChunk, len(b.data))
		req := &bspb.WriteRequest{WriteOffset: int64(off), Data: b.data[off:end], FinishWrite: end == len(b.data)}
		if off == 0 {
			req.ResourceName = name
		}
		if stream.Send(req) != nil || end == len(b.data) {
			break
		}
		off = end
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetCommittedSize() != b.d.Size {
		return fmt.Errorf("committed %d of %d bytes", resp.GetCommittedSize(), b.d.Size)
	}
	return nil
}

// fnRead reads d with ByteStream Read under its function's resource name.
func fnRead(ctx context.Context, conn *grpc.ClientConn, d digest.Digest) ([]byte, error) {
	return readResource(ctx, conn, digest.ReadResourceName("", d))
}

// startSHA256OnlyUpstream is a plain upstream whose castd.yaml narrows
// cache.digest-functions to SHA-256: a stand-in for a pre-2.3 server.
func startSHA256OnlyUpstream(t *testing.T) *upstream {
	t.Helper()
	u := newPlainUpstream(t)
	u.config += "cache:\n  digest-functions: [sha256]\n"
	u.restart(t)
	return u
}

// refusedCalls are the lines of u's castd_grpc_requests_total with a code
// other than OK: calls it refused.
func refusedCalls(t *testing.T, u *upstream) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(scrape(t, u.metricsURL()), "\n") {
		if strings.HasPrefix(line, "castd_grpc_requests_total{") && !strings.Contains(line, `code="OK"`) {
			out = append(out, line)
		}
	}
	return out
}

func TestDigestFunctionsMirrorOnlyToRemotesThatTakeThem(t *testing.T) {
	// Why: a BLAKE3 upload is mirrored to the user's BLAKE3-capable remote
	// and never sent to a remote that advertises SHA-256 only (which would
	// refuse it, or worse, file it under a SHA-256 name); the SHA-256
	// upload goes to both; the queue drains without retrying the skipped
	// pushes; and a later BLAKE3 read miss is answered by the capable
	// remote only.
	capable, shaOnly := startPlainUpstream(t), startSHA256OnlyUpstream(t)
	l := newLayout(t)
	ws, conn, ctl := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n  - %s\n",
		shaOnly.serverYAML("all", true), capable.serverYAML("all", true)))
	ctx := ctxFor(t, time.Minute)

	small, large := randomFnBlob(digest.BLAKE3, 3000), randomFnBlob(digest.BLAKE3, 3<<20)
	sha := randomFnBlob(digest.SHA256, 4000)
	if err := fnBatchUpdate(ctx, conn, small); err != nil {
		t.Fatalf("BLAKE3 BatchUpdateBlobs: %v", err)
	}
	if err := fnWrite(ctx, conn, large); err != nil {
		t.Fatalf("BLAKE3 ByteStream Write: %v", err)
	}
	if err := fnBatchUpdate(ctx, conn, sha); err != nil {
		t.Fatalf("SHA-256 BatchUpdateBlobs: %v", err)
	}
	testutil.EventuallyWithin(t, 30*time.Second, "the write-back queue to drain", func() bool {
		return ctlStatus(t, ctl).GetQueue().GetDepth() == 0
	})

	if missing, err := fnFindMissing(ctx, capable.conn(t), small.d, large.d); err != nil || len(missing) != 0 {
		t.Errorf("the BLAKE3-capable remote: missing %v, err %v; want both BLAKE3 blobs", missing, err)
	}
	for _, u := range []*upstream{capable, shaOnly} {
		if missing, err := fnFindMissing(ctx, u.conn(t), sha.d); err != nil || len(missing) != 0 {
			t.Errorf("remote %s lacks the SHA-256 blob (missing %v, err %v)", u.url, missing, err)
		}
	}
	// The SHA-256-only remote never saw a BLAKE3 request: it refused
	// nothing, and holds no file named by the large blob's hash.
	if refused := refusedCalls(t, shaOnly); len(refused) != 0 {
		t.Errorf("the SHA-256-only remote refused calls: %q", refused)
	}
	_ = filepath.WalkDir(shaOnly.l.store, func(path string, _ os.DirEntry, err error) error {
		if err == nil && strings.Contains(filepath.Base(path), large.d.Hash) {
			t.Errorf("the SHA-256-only remote stored %s", path)
		}
		return nil
	})
	// And it says so: castd logs that it skipped the remote for BLAKE3.
	if _, ok := ws.logs.find(regexp.MustCompile(`(?i)blake3`)); !ok {
		t.Errorf("the workstation's log never mentions skipping blake3 pushes:\n%s", ws.logs.String())
	}

	// A fresh workstation with the SHA-256-only remote first reads the
	// BLAKE3 blob from the capable one, without asking the other.
	blobCalls := func() []string { // Capabilities calls are expected
		return append(shaOnly.requestLines("ContentAddressableStorage"), shaOnly.requestLines("ByteStream")...)
	}
	before := len(blobCalls())
	l2 := newLayout(t)
	_, conn2, _ := startWorkstation(t, l2, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n  - %s\n",
		shaOnly.serverYAML("all", false), capable.serverYAML("all", false)))
	got, err := fnRead(ctx, conn2, large.d)
	if err != nil || !bytes.Equal(got, large.data) {
		t.Fatalf("BLAKE3 read through a fresh workstation: %d bytes, %v", len(got), err)
	}
	if after := blobCalls(); len(after) != before {
		t.Errorf("the SHA-256-only remote was asked for a BLAKE3 blob: %q", after[before:])
	}
}

func TestDigestFunctionsClientsShareCastdWithoutMeeting(t *testing.T) {
	// Why: a SHA-256 client and a BLAKE3 client share one castd. The same
	// bytes are two blobs, a hash of one function never finds the other's
	// blob (SHA-256 and BLAKE3 hashes have one length), action results are
	// kept apart, and all of it holds after a restart, on disk.
	l := newLayout(t)
	cfg := l.configYAML("")
	p := startCastd(t, l, cfg)
	conn := dialUnix(t, p.socket)
	ctx := ctxFor(t, time.Minute)

	data := make([]byte, 5000)
	_, _ = rand.Read(data)
	s, b := fnBlob{data, digest.OfBytesIn(digest.SHA256, data)}, fnBlob{data, digest.OfBytesIn(digest.BLAKE3, data)}
	big := randomFnBlob(digest.BLAKE3, 2<<20)
	if err := fnBatchUpdate(ctx, conn, s); err != nil {
		t.Fatal(err)
	}
	if err := fnBatchUpdate(ctx, conn, b); err != nil {
		t.Fatal(err)
	}
	if err := fnWrite(ctx, conn, big); err != nil {
		t.Fatal(err)
	}
	// Each function's name for the other's hash: present in neither.
	bAsSHA := digest.MustParse(b.d.Hash, b.d.Size)
	sAsB3, err := digest.NewIn(digest.BLAKE3, s.d.Hash, s.d.Size)
	if err != nil {
		t.Fatal(err)
	}
	bigAsSHA := digest.MustParse(big.d.Hash, big.d.Size)

	// A SHA-256 action result and a BLAKE3 one under one hex hash.
	ac := repb.NewActionCacheClient(conn)
	actionHex := s.d.Hash
	for _, r := range []struct {
		f   digest.Function
		out digest.Digest
	}{{digest.SHA256, s.d}, {digest.BLAKE3, b.d}} {
		_, err := ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
			ActionDigest:   &repb.Digest{Hash: actionHex, SizeBytes: 99},
			DigestFunction: r.f.Proto(),
			ActionResult:   &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out", Digest: r.out.Proto()}}},
		})
		if err != nil {
			t.Fatalf("UpdateActionResult (%s): %v", r.f, err)
		}
	}

	check := func(t *testing.T, conn *grpc.ClientConn) {
		for _, own := range []fnBlob{s, b, big} {
			if got, err := fnRead(ctx, conn, own.d); err != nil || !bytes.Equal(got, own.data) {
				t.Errorf("read %s: %d bytes, %v", own.d, len(got), err)
			}
		}
		for _, other := range []digest.Digest{bAsSHA, sAsB3, bigAsSHA} {
			missing, err := fnFindMissing(ctx, conn, other)
			if err != nil || len(missing) != 1 {
				t.Errorf("FindMissing(%s) = %v, %v; want it missing", other, missing, err)
			}
			if _, err := fnRead(ctx, conn, other); status.Code(err) != codes.NotFound {
				t.Errorf("read %s: %v, want NOT_FOUND", other, err)
			}
		}
		for _, want := range []struct {
			f   digest.Function
			out digest.Digest
		}{{digest.SHA256, s.d}, {digest.BLAKE3, b.d}} {
			ar, err := repb.NewActionCacheClient(conn).GetActionResult(ctx, &repb.GetActionResultRequest{
				ActionDigest: &repb.Digest{Hash: actionHex, SizeBytes: 99}, DigestFunction: want.f.Proto()})
			if err != nil || ar.GetOutputFiles()[0].GetDigest().GetHash() != want.out.Hash {
				t.Errorf("GetActionResult (%s) = %v, %v; want the result naming %s", want.f, ar, err, want.out)
			}
		}
	}
	t.Run("running", func(t *testing.T) { check(t, conn) })

	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("castd exited %d on SIGTERM:\n%s", code, p.logs.String())
	}
	p = startCastd(t, l, cfg)
	t.Run("after restart", func(t *testing.T) { check(t, dialUnix(t, p.socket)) })
}

func TestDigestFunctionsNarrowedByConfig(t *testing.T) {
	// Why: cache.digest-functions is one setting for the whole daemon: a
	// castd narrowed to SHA-256 advertises only SHA-256 and refuses BLAKE3
	// on every service (CAS, Execution, Remote Asset) with INVALID_ARGUMENT
	// naming digest_function, rather than accepting it on the one service
	// the setting was forgotten on.
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML("cache:\n  digest-functions: [sha256]\n"))
	conn := dialUnix(t, p.socket)
	ctx := ctxFor(t, time.Minute)

	caps, err := repb.NewCapabilitiesClient(conn).GetCapabilities(ctx, &repb.GetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sha := fmt.Sprint([]repb.DigestFunction_Value{repb.DigestFunction_SHA256})
	if got := fmt.Sprint(caps.GetCacheCapabilities().GetDigestFunctions()); got != sha {
		t.Errorf("cache digest_functions = %s, want %s", got, sha)
	}
	if got := fmt.Sprint(caps.GetExecutionCapabilities().GetDigestFunctions()); got != sha {
		t.Errorf("execution digest_functions = %s, want %s", got, sha)
	}

	b := randomFnBlob(digest.BLAKE3, 100)
	refused := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "digest_function") {
			t.Errorf("%s in BLAKE3 = %v, want INVALID_ARGUMENT naming digest_function", what, err)
		}
	}
	_, err = fnFindMissing(ctx, conn, b.d)
	refused("FindMissingBlobs", err)
	stream, err := repb.NewExecutionClient(conn).Execute(ctx, &repb.ExecuteRequest{ActionDigest: b.d.Proto(), DigestFunction: repb.DigestFunction_BLAKE3})
	if err == nil {
		_, err = stream.Recv()
	}
	refused("Execute", err)
	_, err = assetpb.NewFetchClient(conn).FetchBlob(ctx, &assetpb.FetchBlobRequest{Uris: []string{"https://example.com/a"}, DigestFunction: repb.DigestFunction_BLAKE3})
	refused("FetchBlob", err)
	_, err = assetpb.NewPushClient(conn).PushBlob(ctx, &assetpb.PushBlobRequest{Uris: []string{"https://example.com/a"}, BlobDigest: b.d.Proto(), DigestFunction: repb.DigestFunction_BLAKE3})
	refused("PushBlob", err)
}
