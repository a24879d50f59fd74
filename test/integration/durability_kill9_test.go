package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Kill -9 load parameters: clients uploading at once, and the range of
// acknowledgements per round after which castd is killed (drawn at random
// each round, so the kill lands at a different point of the load).
const (
	kill9Clients   = 16
	kill9MinAcks   = 30
	kill9ExtraAcks = 120
)

// envInt is the integer in environment variable name, or def when unset.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// acUpload is an UpdateActionResult: the action and the result sent.
type acUpload struct {
	action *repb.Digest
	result *repb.ActionResult
}

// uploadLog records, for one round, what castd acknowledged and what was
// cut off by the kill. Safe for concurrent use.
type uploadLog struct {
	mu             sync.Mutex
	blobs, cutOff  []blob
	acs, cutOffACs []acUpload
	acks           int
	target         int
	enough         chan struct{} // closed when acks reaches target
}

func newUploadLog(target int) *uploadLog {
	return &uploadLog{target: target, enough: make(chan struct{})}
}

// ack records the outcome of one call that wrote bs and, if ac is not
// nil, the action result that followed them.
func (u *uploadLog) ack(bs []blob, ac *acUpload, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.cutOff = append(u.cutOff, bs...)
		if ac != nil {
			u.cutOffACs = append(u.cutOffACs, *ac)
		}
		return
	}
	u.blobs = append(u.blobs, bs...)
	if ac != nil {
		u.acs = append(u.acs, *ac)
	}
	if u.acks++; u.acks == u.target {
		close(u.enough)
	}
}

// kill9Totals are the figures of a whole run.
type kill9Totals struct {
	rounds, blobs, acs, cutOff int
	bytes                      int64
	lost, corrupt              int
}

func TestKill9UnderUploadLoad(t *testing.T) {
	t.Log("every acknowledged blob and action result survives kill -9 under a 16-client upload load; a cut-off write is absent or whole")
	rounds := envInt(t, "CASTD_KILL9_ROUNDS", 20)
	runSeed := uint64(envInt(t, "CASTD_KILL9_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("%d rounds, seed %d (CASTD_KILL9_ROUNDS, CASTD_KILL9_SEED)", rounds, runSeed)
	rng := rand.New(rand.NewPCG(runSeed, 0))

	l := newLayout(t)
	cfg := l.configYAML("")
	p := startCastd(t, l, cfg)
	var all []*uploadLog
	var tot kill9Totals
	for r := range rounds {
		log := newUploadLog(kill9MinAcks + rng.IntN(kill9ExtraAcks))
		uploadUntilKilled(t, p, log, runSeed+uint64(r)*kill9Clients)
		p = startCastd(t, l, cfg)
		conn := dialUnix(t, p.socket)
		lost, corrupt := checkRound(t, conn, log, fmt.Sprintf("round %d", r+1))
		tot.rounds++
		tot.lost += lost
		tot.corrupt += corrupt
		tot.cutOff += len(log.cutOff) + len(log.cutOffACs)
		all = append(all, log)
	}
	// A later round's load and kill must not lose what earlier rounds
	// acknowledged.
	conn := dialUnix(t, p.socket)
	tot.lost, tot.corrupt = 0, 0
	for i, log := range all {
		lost, corrupt := checkAcked(t, conn, log, fmt.Sprintf("after all rounds, round %d", i+1))
		tot.lost += lost
		tot.corrupt += corrupt
		tot.blobs += len(log.blobs)
		tot.acs += len(log.acs)
		for _, b := range log.blobs {
			tot.bytes += int64(len(b.data))
		}
	}
	t.Logf("kill -9 durability: %d rounds, %d blobs (%d MiB) and %d action results acknowledged, %d writes cut off by the kills; lost %d, corrupt %d",
		tot.rounds, tot.blobs, tot.bytes>>20, tot.acs, tot.cutOff, tot.lost, tot.corrupt)
	if tot.cutOff == 0 {
		t.Error("no write was in flight at any kill; the test did not test what it says")
	}
}

// uploadUntilKilled runs the clients against p until log has its target of
// acknowledgements, kills p with SIGKILL while they are still writing and
// waits for every client to see the end.
func uploadUntilKilled(t *testing.T, p *castdProc, log *uploadLog, seed uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for c := range kill9Clients {
		conn, err := grpc.NewClient("unix:"+p.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed+uint64(c), 1))
			for ctx.Err() == nil {
				uploadOne(ctx, conn, rng, log)
			}
		}()
	}
	select {
	case <-log.enough:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the clients did not reach %d acknowledgements; see castd log", log.target)
	}
	p.kill9()
	cancel()
	wg.Wait()
}

// uploadOne makes one upload the way a build client does: a batch of
// small blobs, one streamed blob, or an action's outputs followed by its
// result.
func uploadOne(ctx context.Context, conn *grpc.ClientConn, rng *rand.Rand, log *uploadLog) {
	switch op := rng.IntN(10); {
	case op < 4:
		bs := make([]blob, 1+rng.IntN(4))
		for i := range bs {
			bs[i] = randomBlob(logUniform(rng, 1<<10, 512<<10))
		}
		log.ack(bs, nil, batchUpdate(ctx, conn, bs...))
	case op < 8:
		b := randomBlob(logUniform(rng, 1<<10, 4<<20))
		log.ack([]blob{b}, nil, bytestreamWrite(ctx, conn, b))
	default:
		out, stdout := randomBlob(logUniform(rng, 1<<10, 256<<10)), randomBlob(1<<10+rng.IntN(1<<10))
		outputs := []blob{out, stdout}
		if err := batchUpdate(ctx, conn, outputs...); err != nil {
			log.ack(outputs, nil, err)
			return
		}
		log.ack(outputs, nil, nil)
		ac := acUpload{action: randomBlob(100).d, result: &repb.ActionResult{
			OutputFiles:  []*repb.OutputFile{{Path: "out/bin", Digest: out.d}},
			StdoutDigest: stdout.d,
		}}
		_, err := repb.NewActionCacheClient(conn).UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
			ActionDigest: ac.action, ActionResult: ac.result, DigestFunction: repb.DigestFunction_SHA256,
		})
		log.ack(nil, &ac, err)
	}
}

// logUniform is a size between lo and hi whose logarithm is uniform: many
// small blobs and some large, as build outputs are.
func logUniform(rng *rand.Rand, lo, hi int) int {
	return int(float64(lo) * math.Pow(float64(hi)/float64(lo), rng.Float64()))
}

// checkRound checks one round right after the restart: what was
// acknowledged is there and intact, what was cut off is absent or whole.
func checkRound(t *testing.T, conn *grpc.ClientConn, log *uploadLog, round string) (lost, corrupt int) {
	t.Helper()
	lost, corrupt = checkAcked(t, conn, log, round)
	ctx := ctxFor(t, 2*time.Minute)
	for _, b := range log.cutOff {
		got, err := readBlob(ctx, conn, b.d)
		switch {
		case isNotFound(err):
		case err != nil:
			t.Errorf("%s: cut-off blob %s: %v", round, b.d.GetHash(), err)
		case !bytes.Equal(got, b.data):
			t.Errorf("%s: cut-off blob %s is partial or corrupt: %d bytes of %d", round, b.d.GetHash(), len(got), len(b.data))
		}
	}
	for _, ac := range log.cutOffACs {
		if err := checkAC(ctx, conn, ac); err != nil && !isNotFound(err) {
			t.Errorf("%s: cut-off action result: %v", round, err)
		}
	}
	return lost, corrupt
}

// checkAcked reads back every acknowledged blob and action result of log
// and counts the ones lost (NOT_FOUND) and corrupt (anything else wrong).
func checkAcked(t *testing.T, conn *grpc.ClientConn, log *uploadLog, round string) (lost, corrupt int) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	for _, b := range log.blobs {
		got, err := readBlob(ctx, conn, b.d)
		switch {
		case isNotFound(err):
			lost++
			t.Errorf("%s: acknowledged blob %s/%d lost", round, b.d.GetHash(), b.d.GetSizeBytes())
		case err != nil || !bytes.Equal(got, b.data):
			corrupt++
			t.Errorf("%s: acknowledged blob %s/%d: %d bytes, %v", round, b.d.GetHash(), b.d.GetSizeBytes(), len(got), err)
		}
	}
	for _, ac := range log.acs {
		switch err := checkAC(ctx, conn, ac); {
		case isNotFound(err):
			lost++
			t.Errorf("%s: acknowledged action result lost: %v", round, err)
		case err != nil:
			corrupt++
			t.Errorf("%s: acknowledged action result: %v", round, err)
		}
	}
	return lost, corrupt
}

// checkAC gets ac's action result and compares it with what was sent.
func checkAC(ctx context.Context, conn *grpc.ClientConn, ac acUpload) error {
	got, err := repb.NewActionCacheClient(conn).GetActionResult(ctx, &repb.GetActionResultRequest{
		ActionDigest: ac.action, DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return err
	}
	if !proto.Equal(got, ac.result) {
		return fmt.Errorf("action %s: result %v, want %v", ac.action.GetHash(), got, ac.result)
	}
	return nil
}
