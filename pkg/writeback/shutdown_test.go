package writeback_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/writeback"

	"github.com/castd/castd/pkg/store/disk"
)

// stuckRemote is a remote whose every push attempt (FindMissing, the first
// call of one) fails UNAVAILABLE at once, blocks until its context ends,
// or blocks until release is closed whatever the context says.
type stuckRemote struct {
	*store.Memory
	mode     string // "fail", "until-cancel", "ignore-cancel"
	attempts atomic.Int32
	started  chan struct{} // closed by the first attempt
	once     sync.Once
	release  chan struct{}
}

func newStuckRemote(mode string) *stuckRemote {
	return &stuckRemote{Memory: store.NewMemory(), mode: mode, started: make(chan struct{}), release: make(chan struct{})}
}

func (r *stuckRemote) FindMissing(ctx context.Context, _ []digest.Digest) ([]digest.Digest, error) {
	r.attempts.Add(1)
	r.once.Do(func() { close(r.started) })
	switch r.mode {
	case "until-cancel":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case "ignore-cancel":
		<-r.release
	}
	return nil, status.Error(codes.Unavailable, "connection refused")
}

// queueOneStuckPush starts a queue on s with one push target, a
// stuckRemote in mode (released when t ends), enqueues one blob and waits
// until the remote has been asked for it. Retries wait an hour.
func queueOneStuckPush(t *testing.T, s *disk.Store, mode string) (*writeback.Queue, *stuckRemote) {
	t.Helper()
	remote := newStuckRemote(mode)
	t.Cleanup(func() { close(remote.release) })
	q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, writeback.Options{BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	q.Register("remote", writeback.Sink{CAS: remote, ActionCache: remote})
	q.Start()
	d := putRandom(t, s, 100)
	if err := q.Enqueue(context.Background(), writeback.KindBlob, d, "", userTarget); err != nil {
		t.Fatal(err)
	}
	<-remote.started
	return q, remote
}

// closeWithin runs q.Close(timeout) and fails t if it has not returned
// after a generous deadline (a hang, not a slow machine).
func closeWithin(t *testing.T, q *writeback.Queue, timeout time.Duration) int {
	t.Helper()
	left := make(chan int, 1)
	go func() { left <- q.Close(timeout) }()
	select {
	case n := <-left:
		return n
	case <-time.After(60 * time.Second):
		t.Fatal("Queue.Close did not return: shutdown hangs on a remote")
		return 0
	}
}

func TestQueueCloseBoundedWhateverTheRemote(t *testing.T) {
	for _, tc := range []struct{ name, why, mode string }{
		{"push fails at once", "a failed entry is not due again before its backoff, so the worker sleeps instead of spinning", "fail"},
		{"push waits until cancelled", "the drain time cancels the push; the cancelled entry must not be handed straight back (the old worker spun on it and Close never returned)", "until-cancel"},
		{"push ignores cancellation", "Close returns shortly after the drain time even when a push never returns", "ignore-cancel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why; in every case the entry stays on disk.
			dir := t.TempDir()
			s := openStore(t, dir)
			q, remote := queueOneStuckPush(t, s, tc.mode)
			if left := closeWithin(t, q, 50*time.Millisecond); left != 1 {
				t.Errorf("Close left %d entries, want 1", left)
			}
			if n := remote.attempts.Load(); n != 1 {
				t.Errorf("%d push attempts, want 1 (backoff is an hour; no retry after cancellation)", n)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openStore(t, dir)
			q2, err := writeback.Open(s2.Records("writeback"), s2, s2.ActionCache, writeback.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer q2.Close(0)
			if depth := q2.Stats().Depth; depth != 1 {
				t.Errorf("after restart the queue holds %d entries, want 1", depth)
			}
		})
	}
}

func TestQueueCloseContextCutShort(t *testing.T) {
	// Why: the daemon's shutdown budget is one context shared by the gRPC
	// drain and the queue; a second SIGTERM cancels it, and the queue must
	// stop then, not after a drain time of its own.
	s := openStore(t, t.TempDir())
	q, _ := queueOneStuckPush(t, s, "until-cancel")
	ctx, cancel := context.WithCancel(context.Background()) // no deadline: only the cut ends it
	left := make(chan int, 1)
	go func() { left <- q.CloseContext(ctx) }()
	cancel()
	select {
	case n := <-left:
		if n != 1 {
			t.Errorf("CloseContext left %d entries, want 1 (kept for the next start)", n)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("CloseContext did not return after its context was cancelled")
	}
}
