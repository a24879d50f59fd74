package integration_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// writebackQuota is the workstation's small quota: a few hundred kB blobs
// fill it, so eviction runs while the queue waits for the remote.
const (
	writebackQuota = 2 << 20
	writebackBlob  = 200 << 10
)

// acWrite records an action result referencing out under action on the
// workstation's global instance.
func acWrite(ctx context.Context, conn *grpc.ClientConn, action, out *repb.Digest) error {
	_, err := repb.NewActionCacheClient(conn).UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
		ActionDigest: action, DigestFunction: repb.DigestFunction_SHA256,
		ActionResult: &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out", Digest: out}}},
	})
	return err
}

// fillQueue writes blobs (an action result referencing every other one)
// until the workstation refuses a write because the queue holds its whole
// quota, and returns the acknowledged blobs and action digests. Any other
// failure fails t: a write is either acknowledged or refused outright.
func fillQueue(t *testing.T, conn *grpc.ClientConn) (blobs []blob, actions []*repb.Digest) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	for i := 0; i < 100; i++ {
		b := randomBlob(writebackBlob)
		err := instanceWrite(ctx, conn, "", b)
		if grpcstatus.Code(err) == codes.FailedPrecondition {
			return blobs, actions
		}
		if err != nil {
			t.Fatalf("write %d: %v (want success or FAILED_PRECONDITION naming the queue)", i, err)
		}
		blobs = append(blobs, b)
		if i%2 == 0 {
			action := randomBlob(64).d
			if err := acWrite(ctx, conn, action, b.d); err != nil {
				t.Fatalf("action result %d: %v", i, err)
			}
			actions = append(actions, action)
		}
	}
	t.Fatal("100 writes (ten times the quota) were all accepted while the push remote was down: nothing is held")
	return nil, nil
}

func TestWritebackQueueSurvivesKill9UnderEviction(t *testing.T) {
	// Why: every write acknowledged while the push remote is down arrives
	// once it is back, across kill -9 and a restart, although the small
	// quota makes castd evict meanwhile: queued blobs are held, and once
	// they fill the quota new writes are refused (never acknowledged and
	// then dropped).
	user := newPlainUpstream(t) // not running yet
	l := newLayout(t)
	quota := fmt.Sprintf("cache:\n  quota: %d\n", writebackQuota)
	cfg := quota + fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", user.serverYAML("all", true))

	// Unqueued content first (no push remote yet), for eviction to take.
	ws, conn, _ := startWorkstation(t, l, quota)
	var filler []blob
	for range 4 {
		filler = append(filler, randomBlob(writebackBlob))
	}
	if err := instanceWrite(ctxFor(t, time.Minute), conn, "", filler...); err != nil {
		t.Fatal(err)
	}
	ws.kill9()

	ws, conn, ctl := startWorkstation(t, l, cfg)
	blobs, actions := fillQueue(t, conn)
	st := ctlStatus(t, ctl)
	if st.GetStore().GetEvictions() == 0 {
		t.Fatalf("no eviction ran while the queue filled (store %v): the test proves nothing", st.GetStore())
	}
	acked := len(blobs) + len(actions)
	if d := st.GetQueue().GetDepth(); d != int64(acked) {
		t.Fatalf("queue depth %d, want the %d acknowledged items", d, acked)
	}
	if h := st.GetQueue().GetHeldBytes(); h < int64(len(blobs))*writebackBlob {
		t.Errorf("status held_bytes = %d, want at least the %d queued blobs' %d bytes", h, len(blobs), len(blobs)*writebackBlob)
	}
	ws.kill9()

	_, conn, ctl = startWorkstation(t, l, cfg)
	err := instanceWrite(ctxFor(t, time.Minute), conn, "", randomBlob(writebackBlob))
	if grpcstatus.Code(err) != codes.FailedPrecondition {
		t.Errorf("write after the restart with the queue still full = %v, want FAILED_PRECONDITION (holds taken again on reload)", err)
	}
	user.restart(t)
	testutil.EventuallyWithin(t, 2*time.Minute, "the write-back queue to drain", func() bool {
		return ctlStatus(t, ctl).GetQueue().GetDepth() == 0
	})

	lost := 0
	for i, b := range blobs {
		if !user.has(t, b.d) {
			lost++
			t.Errorf("acknowledged blob %d never reached the push remote", i)
		}
	}
	ac := repb.NewActionCacheClient(user.conn(t))
	for i, a := range actions {
		if _, err := ac.GetActionResult(ctxFor(t, 10*time.Second), &repb.GetActionResultRequest{ActionDigest: a, DigestFunction: repb.DigestFunction_SHA256}); err != nil {
			lost++
			t.Errorf("acknowledged action result %d never reached the push remote: %v", i, err)
		}
	}
	t.Logf("write-back durability: quota %d bytes, %d blobs of %d bytes and %d action results acknowledged, 1 write refused (FAILED_PRECONDITION), kill -9 + restart, %d evictions, %d lost",
		writebackQuota, len(blobs), writebackBlob, len(actions), st.GetStore().GetEvictions(), lost)
}
