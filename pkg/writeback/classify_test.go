package writeback_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/writeback"

	"github.com/castd/castd/pkg/store/disk"
)

// answeringAC is a remote whose CAS works and whose action cache answers
// every UpdateActionResult with code (OK stores it).
type answeringAC struct {
	*flakyRemote
	code  codes.Code
	calls atomic.Int32
}

func (a *answeringAC) UpdateActionResult(ctx context.Context, action digest.Digest, ar *repb.ActionResult) error {
	a.calls.Add(1)
	if a.code != codes.OK {
		return status.Errorf(a.code, "ActionCache/UpdateActionResult: %s", a.code)
	}
	return a.Memory.UpdateActionResult(ctx, action, ar)
}

// logBuffer collects log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// putActionResult stores a small action result in s's instance "inst"
// and returns the action digest.
func putActionResult(t *testing.T, s *disk.Store) digest.Digest {
	t.Helper()
	out := putRandom(t, s, 50)
	action := putRandom(t, s, 30)
	ar := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out", Digest: out.Proto()}}}
	if err := s.ActionCache("inst").UpdateActionResult(context.Background(), action, ar); err != nil {
		t.Fatal(err)
	}
	return action
}

func TestQueueParksRolesRefusedForGood(t *testing.T) {
	for _, code := range []codes.Code{codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.FailedPrecondition} {
		t.Run(code.String(), func(t *testing.T) {
			// Why: a remote that refuses UpdateActionResult for good (an
			// artifact server without an action cache) must not be retried
			// forever in silence: the role is parked with one warning, its
			// entries stay on disk, the remote's CAS role keeps working, and
			// a restart tries the entries again.
			dir := t.TempDir()
			s := openStore(t, dir)
			remote := &answeringAC{flakyRemote: newFlakyRemote(), code: code}
			logs := &logBuffer{}
			reg := prometheus.NewRegistry()
			q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, writeback.Options{
				BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, Registerer: reg,
				Logger: slog.New(slog.NewTextHandler(logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			q.Register("remote", writeback.Sink{CAS: remote.flakyRemote, ActionCache: remote})
			actions := []digest.Digest{putActionResult(t, s), putActionResult(t, s)}
			for _, a := range actions { // before Start: both in the first batch
				if err := q.Enqueue(context.Background(), writeback.KindActionResult, a, "inst", userTarget); err != nil {
					t.Fatal(err)
				}
			}
			q.Start()
			testutil.Eventually(t, "the action-cache role parked", func() bool { return len(q.Stats().Remotes["remote"].Parked) == 1 })
			blob := putRandom(t, s, 70)
			if err := q.Enqueue(context.Background(), writeback.KindBlob, blob, "", userTarget); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "a blob pushed while the action cache is parked", func() bool { return remote.has(blob) })

			p := q.Stats().Remotes["remote"].Parked[0]
			if p.Role != writeback.RoleActionCache || p.Code != code || p.Entries != 2 {
				t.Errorf("parked = %+v, want role action-cache, code %s, 2 entries", p, code)
			}
			if n := remote.calls.Load(); n != 1 {
				t.Errorf("UpdateActionResult called %d times, want 1 (parked after the first refusal)", n)
			}
			if n := logs.count("remote refuses pushes"); n != 1 || logs.count("code="+code.String()) != 1 {
				t.Errorf("%d parking warnings naming the code, want 1; logs:\n%s", n, logs.buf.String())
			}
			if v := gaugeValue(t, reg, "castd_writeback_parked_entries"); v != 2 {
				t.Errorf("castd_writeback_parked_entries = %v, want 2", v)
			}
			if left := closeWithin(t, q, time.Hour); left != 2 {
				t.Errorf("Close left %d entries, want the 2 parked ones", left)
			}

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openStore(t, dir)
			remote.code = codes.OK // the configuration was fixed; castd restarted
			q2, err := writeback.Open(s2.Records("writeback"), s2, s2.ActionCache, writeback.Options{})
			if err != nil {
				t.Fatal(err)
			}
			q2.Register("remote", writeback.Sink{CAS: remote.flakyRemote, ActionCache: remote})
			q2.Start()
			t.Cleanup(func() { q2.Close(time.Second) })
			testutil.Eventually(t, "the parked entries pushed after restart", func() bool { return q2.Stats().Depth == 0 })
			for _, a := range actions {
				if _, err := remote.Memory.GetActionResult(context.Background(), a); err != nil {
					t.Errorf("action result %s not on the remote after restart: %v", a, err)
				}
			}
		})
	}
}

func TestQueueUnparkRetriesParkedRoles(t *testing.T) {
	t.Log("after a configuration reload a parked role is retried: the refusal may have been fixed (a token, an endpoint)")
	s := openStore(t, t.TempDir())
	remote := &answeringAC{flakyRemote: newFlakyRemote(), code: codes.PermissionDenied}
	q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, writeback.Options{BackoffMin: time.Millisecond, BackoffMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(time.Second) })
	q.Register("remote", writeback.Sink{CAS: remote.flakyRemote, ActionCache: remote})
	action := putActionResult(t, s)
	if err := q.Enqueue(context.Background(), writeback.KindActionResult, action, "inst", userTarget); err != nil {
		t.Fatal(err)
	}
	q.Start()
	testutil.Eventually(t, "the action-cache role parked", func() bool { return len(q.Stats().Remotes["remote"].Parked) == 1 })
	remote.code = codes.OK // parked: no push reads it until Unpark (which takes the queue's lock)
	if n := q.Unpark(); n != 1 {
		t.Errorf("Unpark = %d, want 1 role", n)
	}
	testutil.Eventually(t, "the parked entry pushed after Unpark", func() bool { return q.Stats().Depth == 0 })
	if _, err := remote.Memory.GetActionResult(context.Background(), action); err != nil {
		t.Errorf("action result not on the remote after Unpark: %v", err)
	}
}

func TestQueueRetriesTransientAnswers(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown} {
		t.Run(code.String(), func(t *testing.T) {
			// Why: a transient answer is retried with backoff, never parked.
			s := openStore(t, t.TempDir())
			remote := &answeringAC{flakyRemote: newFlakyRemote(), code: code}
			q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, writeback.Options{BackoffMin: time.Millisecond, BackoffMax: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			q.Register("remote", writeback.Sink{CAS: remote.flakyRemote, ActionCache: remote})
			q.Start()
			t.Cleanup(func() { q.Close(time.Second) })
			if err := q.Enqueue(context.Background(), writeback.KindActionResult, putActionResult(t, s), "inst", userTarget); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "three attempts", func() bool { return remote.calls.Load() >= 3 })
			if p := q.Stats().Remotes["remote"].Parked; len(p) != 0 {
				t.Errorf("parked %+v after %s, want nothing parked", p, code)
			}
		})
	}
}

// gaugeValue sums the samples of the metric name in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetGauge().GetValue()
			}
		}
	}
	return v
}

func TestQueueRetriesOnItsClock(t *testing.T) {
	// Why: the retry backoff is measured on the queue's clock, so a test
	// (and the daemon's clock) decides when a failed entry is due again.
	s := openStore(t, t.TempDir())
	remote := newFlakyRemote()
	remote.down.Store(true)
	clock := clock.NewFake(time.Unix(1_000_000, 0))
	q := newQueue(t, s, remote, writeback.Options{BackoffMin: time.Minute, BackoffMax: time.Minute, Clock: clock})
	d := putRandom(t, s, 100)
	if err := q.Enqueue(context.Background(), writeback.KindBlob, d, "", userTarget); err != nil {
		t.Fatal(err)
	}
	testutil.WaitArmed(t, clock, -1) // the failed push waits for its retry
	remote.down.Store(false)
	clock.Advance(time.Minute - time.Nanosecond)
	if remote.has(d) {
		t.Fatal("the entry was retried before its backoff passed")
	}
	clock.Advance(time.Nanosecond)
	testutil.Eventually(t, "the retried push", func() bool { return remote.has(d) })
}
