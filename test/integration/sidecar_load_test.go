package integration_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	longrunningpb "cloud.google.com/go/longrunning/autogen/longrunningpb"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

const (
	// loadClients is how many jobs share one sidecar, as on a busy runner.
	loadClients = 16
	// loadOpsPerClient bounds the test by work done, not by wall-clock time.
	loadOpsPerClient = 120
	// loadActions is the small set of actions every client executes, so
	// that identical Executes overlap.
	loadActions = 4
)

// The operations a client draws from, with their weights out of 100.
const (
	opBatchUpdate = iota
	opStreamWrite
	opBatchRead
	opStreamRead
	opFindMissing
	opACUpdate
	opACGet
	opExecute
	numOps
)

var (
	opNames   = [numOps]string{"BatchUpdateBlobs", "ByteStream.Write", "BatchReadBlobs", "ByteStream.Read", "FindMissingBlobs", "UpdateActionResult", "GetActionResult", "Execute"}
	opWeights = [numOps]int{25, 8, 20, 10, 12, 10, 7, 8}
)

// seededBlob is an acknowledged blob, kept as the seed that regenerates it
// so that the final check compares bytes without holding them all.
type seededBlob struct {
	seed uint64
	size int
	d    *repb.Digest
}

// blobFromSeed returns size pseudo-random bytes determined by seed.
func blobFromSeed(seed uint64, size int) blob {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	data := make([]byte, size)
	_, _ = rand.NewChaCha8(key).Read(data)
	return blobOf(data)
}

// loadAction is one prepared action and the output it must produce.
type loadAction struct {
	digest *repb.Digest
	marker string // the command appends a line here each time it runs
	want   *repb.Digest
}

// acEntry is an acknowledged UpdateActionResult.
type acEntry struct{ action, output *repb.Digest }

// sidecarLoad is the shared state of one load run. Safe for concurrent use.
type sidecarLoad struct {
	socket  string
	actions []loadAction

	mu       sync.Mutex
	blobs    []seededBlob
	acs      []acEntry
	executed map[int]bool        // actions with at least one successful Execute
	errs     map[string][]string // op name -> error messages

	ops   [numOps]atomic.Int64
	bytes atomic.Int64 // payload bytes sent and received
}

// sidecar is a castd started for load, usable from tests and benchmarks.
type sidecar struct {
	*castdProc
	base string // where the load's actions leave their markers
}

// startSidecar starts one castd on a Unix socket with local execution and
// stops it when tb ends.
func startSidecar(tb testing.TB) *sidecar {
	tb.Helper()
	l := newLayout(tb)
	yaml := fmt.Sprintf("listen:\n  - unix:%s\nstore-dir: %s\nmetrics: 127.0.0.1:0\nlocal-execution: {sandbox: none, workdir: %s}\n",
		l.socket, l.store, filepath.Join(l.base, "work"))
	return &sidecar{castdProc: startCastd(tb, l, yaml), base: l.base}
}

// dialLoad connects one client the way a separate CI job would: its own
// connection, waiting for the socket to be ready.
func dialLoad(socket string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix:"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
}

// newSidecarLoad uploads the overlapping actions' Commands and Actions.
func newSidecarLoad(tb testing.TB, s *sidecar) *sidecarLoad {
	tb.Helper()
	l := &sidecarLoad{socket: s.socket, executed: map[int]bool{}, errs: map[string][]string{}}
	conn, err := dialLoad(s.socket)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		tb.Fatalf("health check: %v", err)
	}
	empty := blobOf(nil) // the empty Directory: servers treat the empty blob as present
	var uploads []blob
	for k := range loadActions {
		marker := filepath.Join(s.base, fmt.Sprintf("ran-%d", k))
		cmd := marshalBlob(tb, &repb.Command{
			Arguments:   []string{"/bin/sh", "-c", fmt.Sprintf("echo ran >> %s && printf 'result %d\\n' > out.txt", marker, k)},
			OutputPaths: []string{"out.txt"}, // castd speaks REAPI 2.3
		})
		action := marshalBlob(tb, &repb.Action{CommandDigest: cmd.d, InputRootDigest: empty.d})
		uploads = append(uploads, cmd, action)
		l.actions = append(l.actions, loadAction{digest: action.d, marker: marker, want: blobOf(fmt.Appendf(nil, "result %d\n", k)).d})
	}
	if err := batchUpdate(ctx, conn, uploads...); err != nil {
		tb.Fatalf("uploading actions: %v", err)
	}
	return l
}

func marshalBlob(tb testing.TB, m proto.Message) blob {
	data, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return blobOf(data)
}

// run drives every client through opsPerClient operations and returns how
// long that took.
func (l *sidecarLoad) run(ctx context.Context, opsPerClient int) (time.Duration, error) {
	start := time.Now()
	var g errgroup.Group
	for id := range loadClients {
		g.Go(func() error {
			conn, err := dialLoad(l.socket)
			if err != nil {
				return err
			}
			defer conn.Close()
			rng := rand.New(rand.NewPCG(uint64(id), 7))
			for i := range opsPerClient {
				op := l.pick(rng)
				seed := uint64(id)<<40 | uint64(i)<<8
				if err := l.do(ctx, conn, rng, op, seed); err != nil {
					l.fail(op, err)
				}
				l.ops[op].Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// pick draws an operation; reads wait until something was written.
func (l *sidecarLoad) pick(rng *rand.Rand) int {
	n := rng.IntN(100)
	op := 0
	for ; n >= opWeights[op]; op++ {
		n -= opWeights[op]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case (op == opBatchRead || op == opStreamRead || op == opFindMissing || op == opACUpdate) && len(l.blobs) == 0,
		op == opACGet && len(l.acs) == 0:
		return opBatchUpdate
	}
	return op
}

func (l *sidecarLoad) fail(op int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs[opNames[op]] = append(l.errs[opNames[op]], err.Error())
}

func (l *sidecarLoad) ack(bs ...seededBlob) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blobs = append(l.blobs, bs...)
}

// sample returns up to n acknowledged blobs no larger than maxSize.
func (l *sidecarLoad) sample(rng *rand.Rand, n int, maxSize int) []seededBlob {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []seededBlob
	for range n * 4 {
		b := l.blobs[rng.IntN(len(l.blobs))]
		if b.size <= maxSize {
			out = append(out, b)
		}
		if len(out) == n {
			break
		}
	}
	return out
}

func (l *sidecarLoad) do(ctx context.Context, conn *grpc.ClientConn, rng *rand.Rand, op int, seed uint64) error {
	switch op {
	case opBatchUpdate:
		return l.batchUpdate(ctx, conn, rng, seed)
	case opStreamWrite:
		b := blobFromSeed(seed, 1<<20+rng.IntN(3<<20+1))
		if err := bytestreamWrite(ctx, conn, b); err != nil {
			return err
		}
		l.bytes.Add(int64(len(b.data)))
		l.ack(seededBlob{seed, len(b.data), b.d})
	case opBatchRead:
		return l.batchRead(ctx, conn, l.sample(rng, 8, 256<<10))
	case opStreamRead:
		b := l.sample(rng, 1, 4<<20)[0]
		data, err := readBlob(ctx, conn, b.d)
		if err != nil {
			return err
		}
		l.bytes.Add(int64(len(data)))
		return checkHash(data, b.d)
	case opFindMissing:
		return l.findMissing(ctx, conn, rng)
	case opACUpdate:
		return l.acUpdate(ctx, conn, rng, seed)
	case opACGet:
		return l.acGet(ctx, conn, rng)
	case opExecute:
		k := rng.IntN(len(l.actions))
		if err := l.execute(ctx, conn, l.actions[k]); err != nil {
			return err
		}
		l.mu.Lock()
		l.executed[k] = true
		l.mu.Unlock()
	}
	return nil
}

func (l *sidecarLoad) batchUpdate(ctx context.Context, conn *grpc.ClientConn, rng *rand.Rand, seed uint64) error {
	var bs []blob
	var acked []seededBlob
	for j := range 1 + rng.IntN(8) {
		b := blobFromSeed(seed+uint64(j), 1+rng.IntN(64<<10))
		bs = append(bs, b)
		acked = append(acked, seededBlob{seed + uint64(j), len(b.data), b.d})
		l.bytes.Add(int64(len(b.data)))
	}
	if err := batchUpdate(ctx, conn, bs...); err != nil {
		return err
	}
	l.ack(acked...)
	return nil
}

func (l *sidecarLoad) batchRead(ctx context.Context, conn *grpc.ClientConn, bs []seededBlob) error {
	req := &repb.BatchReadBlobsRequest{DigestFunction: repb.DigestFunction_SHA256}
	for _, b := range bs {
		req.Digests = append(req.Digests, b.d)
	}
	resp, err := repb.NewContentAddressableStorageClient(conn).BatchReadBlobs(ctx, req)
	if err != nil {
		return err
	}
	if len(resp.GetResponses()) != len(bs) {
		return fmt.Errorf("%d responses for %d digests", len(resp.GetResponses()), len(bs))
	}
	for _, r := range resp.GetResponses() {
		if c := codes.Code(r.GetStatus().GetCode()); c != codes.OK {
			return fmt.Errorf("acknowledged blob %s: %v %s", r.GetDigest().GetHash(), c, r.GetStatus().GetMessage())
		}
		l.bytes.Add(int64(len(r.GetData())))
		if err := checkHash(r.GetData(), r.GetDigest()); err != nil {
			return err
		}
	}
	return nil
}

// checkHash reports data that does not hash to d: corrupted or mixed up.
func checkHash(data []byte, d *repb.Digest) error {
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != d.GetHash() || int64(len(data)) != d.GetSizeBytes() {
		return fmt.Errorf("blob %s/%d came back as %d different bytes", d.GetHash(), d.GetSizeBytes(), len(data))
	}
	return nil
}

// findMissing asks for acknowledged blobs mixed with never-written ones and
// expects exactly the latter back.
func (l *sidecarLoad) findMissing(ctx context.Context, conn *grpc.ClientConn, rng *rand.Rand) error {
	var ds []*repb.Digest
	absent := map[string]bool{}
	for _, b := range l.sample(rng, 10, 4<<20) {
		ds = append(ds, b.d)
	}
	for range 5 {
		var h [32]byte
		binary.LittleEndian.PutUint64(h[:], rng.Uint64())
		binary.LittleEndian.PutUint64(h[8:], rng.Uint64())
		d := &repb.Digest{Hash: hex.EncodeToString(h[:]), SizeBytes: 1 + rng.Int64N(1000)}
		absent[d.GetHash()] = true
		ds = append(ds, d)
	}
	missing, err := findMissing(ctx, conn, ds...)
	if err != nil {
		return err
	}
	for _, d := range missing {
		if !absent[d.GetHash()] {
			return fmt.Errorf("acknowledged blob %s reported missing", d.GetHash())
		}
	}
	if len(missing) != len(absent) {
		return fmt.Errorf("%d of %d never-written blobs reported missing", len(missing), len(absent))
	}
	return nil
}

// acUpdate records an action result whose output is an acknowledged blob,
// so that castd's completeness check has something real to verify.
func (l *sidecarLoad) acUpdate(ctx context.Context, conn *grpc.ClientConn, rng *rand.Rand, seed uint64) error {
	out := l.sample(rng, 1, 4<<20)[0]
	action := blobFromSeed(seed|0xff, 64).d
	_, err := repb.NewActionCacheClient(conn).UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
		ActionDigest:   action,
		ActionResult:   &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out", Digest: out.d}}},
		DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.acs = append(l.acs, acEntry{action, out.d})
	l.mu.Unlock()
	return nil
}

func (l *sidecarLoad) acGet(ctx context.Context, conn *grpc.ClientConn, rng *rand.Rand) error {
	l.mu.Lock()
	e := l.acs[rng.IntN(len(l.acs))]
	l.mu.Unlock()
	return getAC(ctx, conn, e)
}

func getAC(ctx context.Context, conn *grpc.ClientConn, e acEntry) error {
	res, err := repb.NewActionCacheClient(conn).GetActionResult(ctx, &repb.GetActionResultRequest{
		ActionDigest: e.action, DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return fmt.Errorf("acknowledged action %s: %w", e.action.GetHash(), err)
	}
	if got := res.GetOutputFiles(); len(got) != 1 || !proto.Equal(got[0].GetDigest(), e.output) {
		return fmt.Errorf("action %s: outputs %v, want %s", e.action.GetHash(), got, e.output.GetHash())
	}
	return nil
}

// execute runs a and checks that the result carries the expected output.
func (l *sidecarLoad) execute(ctx context.Context, conn *grpc.ClientConn, a loadAction) error {
	stream, err := repb.NewExecutionClient(conn).Execute(ctx, &repb.ExecuteRequest{
		ActionDigest: a.digest, DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return err
	}
	var last *longrunningpb.Operation
	for {
		op, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		last = op
	}
	if !last.GetDone() {
		return fmt.Errorf("Execute stream ended without a finished operation")
	}
	if e := last.GetError(); e != nil {
		return fmt.Errorf("operation error: %v %s", codes.Code(e.GetCode()), e.GetMessage())
	}
	resp := &repb.ExecuteResponse{}
	if err := last.GetResponse().UnmarshalTo(resp); err != nil {
		return err
	}
	if c := codes.Code(resp.GetStatus().GetCode()); c != codes.OK {
		return fmt.Errorf("execute status: %v %s", c, resp.GetStatus().GetMessage())
	}
	r := resp.GetResult()
	if r.GetExitCode() != 0 || len(r.GetOutputFiles()) != 1 || !proto.Equal(r.GetOutputFiles()[0].GetDigest(), a.want) {
		return fmt.Errorf("action %s: exit %d, outputs %v, want out.txt %s", a.digest.GetHash(), r.GetExitCode(), r.GetOutputFiles(), a.want.GetHash())
	}
	return nil
}

// verify reads back every acknowledged blob and action result, and checks
// that each overlapping action ran exactly once.
func (l *sidecarLoad) verify(tb testing.TB) {
	tb.Helper()
	conn, err := dialLoad(l.socket)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(8)
	for _, b := range l.blobs {
		g.Go(func() error {
			want := blobFromSeed(b.seed, b.size)
			got, err := readBlob(ctx, conn, b.d)
			if err != nil {
				return fmt.Errorf("acknowledged blob %s/%d: %w", b.d.GetHash(), b.size, err)
			}
			if !bytes.Equal(got, want.data) {
				return fmt.Errorf("acknowledged blob %s/%d differs from what was written", b.d.GetHash(), b.size)
			}
			return nil
		})
	}
	for _, e := range l.acs {
		g.Go(func() error { return getAC(ctx, conn, e) })
	}
	if err := g.Wait(); err != nil {
		tb.Error(err)
	}
	for k := range l.executed {
		a := l.actions[k]
		data, err := os.ReadFile(a.marker)
		if err != nil {
			tb.Errorf("action %s succeeded but never ran: %v", a.digest.GetHash(), err)
			continue
		}
		if n := strings.Count(string(data), "ran\n"); n != 1 {
			tb.Errorf("action %s ran %d times; identical actions must run once", a.digest.GetHash(), n)
		}
	}
}

// errorReport is the errors per operation, one example each, or "".
func (l *sidecarLoad) errorReport() string {
	var names []string
	for name := range l.errs {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "%s: %d errors, e.g. %s\n", name, len(l.errs[name]), l.errs[name][0])
	}
	return b.String()
}

func (l *sidecarLoad) totalOps() int64 {
	var n int64
	for i := range l.ops {
		n += l.ops[i].Load()
	}
	return n
}

// localExecutions is castd_executions_total{outcome="local"} summed.
func localExecutions(tb testing.TB, metricsURL string) int {
	tb.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		tb.Fatalf("GET %s: %v", metricsURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0.0
	re := regexp.MustCompile(`(?m)^castd_executions_total\{[^}]*outcome="local"[^}]*\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		n += v
	}
	return int(n)
}

func TestSidecarLoad(t *testing.T) {
	t.Log("16 CI jobs share one sidecar: nothing fails, nothing acknowledged is lost or corrupted, identical actions run once")
	s := startSidecar(t)
	l := newSidecarLoad(t, s)
	elapsed, err := l.run(ctxFor(t, 10*time.Minute), loadOpsPerClient)
	if err != nil {
		t.Fatal(err)
	}
	ops := l.totalOps()
	t.Logf("%d clients, %d ops in %v: %.0f ops/s, %.1f MB/s", loadClients, ops, elapsed.Round(time.Millisecond),
		float64(ops)/elapsed.Seconds(), float64(l.bytes.Load())/1e6/elapsed.Seconds())
	for i := range l.ops {
		t.Logf("  %-18s %d", opNames[i], l.ops[i].Load())
	}
	if want := int64(loadClients * loadOpsPerClient); ops != want {
		t.Errorf("%d operations done, want %d", ops, want)
	}
	if report := l.errorReport(); report != "" {
		t.Errorf("operations failed under load:\n%s", report)
	}
	l.verify(t)
	if got, want := localExecutions(t, s.metricsURL()), len(l.executed); got != want {
		t.Errorf("castd_executions_total{outcome=\"local\"} = %d, want %d (one per distinct action executed)", got, want)
	}
}

// BenchmarkSidecarLoad reports the mixed-load throughput of one castd
// shared by 16 clients; b.N operations are spread over the clients.
func BenchmarkSidecarLoad(b *testing.B) {
	s := startSidecar(b)
	l := newSidecarLoad(b, s)
	b.ResetTimer()
	elapsed, err := l.run(context.Background(), max(1, b.N/loadClients))
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if report := l.errorReport(); report != "" {
		b.Fatalf("operations failed under load:\n%s", report)
	}
	b.ReportMetric(float64(l.totalOps())/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(l.bytes.Load())/1e6/elapsed.Seconds(), "MB/s")
}
