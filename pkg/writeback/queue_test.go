package writeback_test

import (
	"context"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/writeback"

	"github.com/castd/castd/pkg/store/disk"
)

var userTarget = []writeback.Target{{Name: "remote", Origin: policy.OriginUser}}

// newQueue opens a started queue over s with remote registered as "remote".
func newQueue(t *testing.T, s *disk.Store, remote *flakyRemote, opts writeback.Options) *writeback.Queue {
	t.Helper()
	q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, opts)
	if err != nil {
		t.Fatal(err)
	}
	q.Register("remote", writeback.Sink{CAS: remote, ActionCache: remote})
	q.Start()
	t.Cleanup(func() { q.Close(time.Second) })
	return q
}

func TestQueuePushes(t *testing.T) {
	tests := []struct {
		name, why string
		down      bool // remote fails at first, then recovers
	}{
		{name: "remote up", why: "an enqueued blob reaches its target"},
		{name: "remote down then up", why: "a failing remote is retried with backoff until it takes the blob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			s := openStore(t, t.TempDir())
			remote := newFlakyRemote()
			remote.down.Store(tc.down)
			q := newQueue(t, s, remote, writeback.Options{BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond})
			d := putRandom(t, s, 1000)
			if err := q.Enqueue(context.Background(), writeback.KindBlob, d, "", userTarget); err != nil {
				t.Fatal(err)
			}
			if tc.down {
				testutil.Eventually(t, "a failure", func() bool { return q.Stats().Failures > 0 })
				remote.down.Store(false)
			}
			testutil.Eventually(t, "the push", func() bool { return remote.has(d) && q.Stats().Depth == 0 })
			if st := q.Stats(); st.Completed != 1 {
				t.Errorf("completed = %d, want 1", st.Completed)
			}
		})
	}
}

func TestQueueRefusesProjectRemote(t *testing.T) {
	// Nothing is ever pushed to a project-recommended remote, even when
	// the wiring asks for it.
	s := openStore(t, t.TempDir())
	remote := newFlakyRemote()
	q := newQueue(t, s, remote, writeback.Options{})
	d := putRandom(t, s, 10)
	err := q.Enqueue(context.Background(), writeback.KindBlob, d, "", []writeback.Target{{Name: "remote", Origin: policy.OriginProject}})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "project-recommended") {
		t.Fatalf("Enqueue to a project remote = %v, want INTERNAL refusal", err)
	}
	if st := q.Stats(); st.Depth != 0 {
		t.Errorf("depth = %d after a refused enqueue, want 0", st.Depth)
	}
}

func TestQueueBackPressure(t *testing.T) {
	// A full queue makes the writer wait and then fail with
	// RESOURCE_EXHAUSTED, never drop the entry silently.
	s := openStore(t, t.TempDir())
	remote := newFlakyRemote()
	remote.down.Store(true)
	q := newQueue(t, s, remote, writeback.Options{MaxEntries: 1, FullWait: 50 * time.Millisecond, BackoffMin: time.Hour})
	first, second := putRandom(t, s, 10), putRandom(t, s, 11)
	if err := q.Enqueue(context.Background(), writeback.KindBlob, first, "", userTarget); err != nil {
		t.Fatal(err)
	}
	err := q.Enqueue(context.Background(), writeback.KindBlob, second, "", userTarget)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Enqueue into a full queue = %v, want RESOURCE_EXHAUSTED", err)
	}
	if err := q.Enqueue(context.Background(), writeback.KindBlob, first, "", userTarget); err != nil {
		t.Errorf("re-enqueueing a pending push into a full queue = %v, want nil (deduplicated)", err)
	}
}

func TestQueueSurvivesRestart(t *testing.T) {
	// Entries persisted before an acknowledgement are pushed after a
	// restart, even when the first run never reached the remote.
	dir := t.TempDir()
	s := openStore(t, dir)
	remote := newFlakyRemote()
	remote.down.Store(true)
	q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, writeback.Options{BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	q.Register("remote", writeback.Sink{CAS: remote, ActionCache: remote})
	q.Start()
	d := putRandom(t, s, 5000)
	if err := q.Enqueue(context.Background(), writeback.KindBlob, d, "", userTarget); err != nil {
		t.Fatal(err)
	}
	if left := q.Close(50 * time.Millisecond); left != 1 {
		t.Fatalf("Close left %d entries, want 1", left)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir)
	remote.down.Store(false)
	q2 := newQueue(t, s2, remote, writeback.Options{})
	testutil.Eventually(t, "the push after restart", func() bool { return remote.has(d) && q2.Stats().Depth == 0 })
}

// orderingAC records UpdateActionResult and checks the blobs are there.
type orderingAC struct {
	*flakyRemote
	complete bool
}

func (o *orderingAC) UpdateActionResult(ctx context.Context, action digest.Digest, ar *repb.ActionResult) error {
	o.complete = o.has(digest.MustParse(ar.OutputFiles[0].Digest.Hash, ar.OutputFiles[0].Digest.SizeBytes)) &&
		o.has(digest.MustParse(ar.StdoutDigest.Hash, ar.StdoutDigest.SizeBytes))
	o.record("ac " + action.Hash)
	return o.Memory.UpdateActionResult(ctx, action, ar)
}

func TestQueueActionResultAfterBlobs(t *testing.T) {
	// An action result reaches a remote only after every blob it
	// references, so the remote never serves a dangling result.
	s := openStore(t, t.TempDir())
	remote := &orderingAC{flakyRemote: newFlakyRemote()}
	q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, writeback.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Register("remote", writeback.Sink{CAS: remote.flakyRemote, ActionCache: remote})
	q.Start()
	t.Cleanup(func() { q.Close(time.Second) })
	out, stdout := putRandom(t, s, 100), putRandom(t, s, 20)
	ar := &repb.ActionResult{
		OutputFiles:  []*repb.OutputFile{{Path: "out", Digest: out.Proto()}},
		StdoutDigest: stdout.Proto(),
	}
	action := putRandom(t, s, 30)
	if err := s.ActionCache("inst").UpdateActionResult(context.Background(), action, ar); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(context.Background(), writeback.KindActionResult, action, "inst", userTarget); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the action result push", func() bool { return q.Stats().Completed == 1 })
	if !remote.complete {
		t.Errorf("action result arrived before its blobs; arrivals %v", remote.order)
	}
}
