package fanout_test

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// ctxLog records, per call, whether its context carried a fallback and
// whether it ended as stalled.
type ctxLog struct {
	mu       sync.Mutex
	fallback []bool
	stalled  int
}

func (l *ctxLog) saw(ctx context.Context) {
	l.mu.Lock()
	l.fallback = append(l.fallback, store.HasFallback(ctx))
	l.mu.Unlock()
}

func (l *ctxLog) get() ([]bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.fallback...), l.stalled
}

// ctxRecordingCAS notes the context of every call, and with hang set
// holds each call until its context ends.
type ctxRecordingCAS struct {
	store.CAS
	log  *ctxLog
	hang bool
}

func (c *ctxRecordingCAS) wait(ctx context.Context) error {
	c.log.saw(ctx)
	if !c.hang {
		return nil
	}
	<-ctx.Done()
	if store.Stalled(ctx) {
		c.log.mu.Lock()
		c.log.stalled++
		c.log.mu.Unlock()
	}
	return status.FromContextError(ctx.Err()).Err()
}

func (c *ctxRecordingCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	return c.CAS.FindMissing(ctx, ds)
}

func (c *ctxRecordingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.GetWith(ctx, d, offset, store.GetHint{})
}

func (c *ctxRecordingCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	return c.CAS.GetWith(ctx, d, offset, hint)
}

// GetMany asks once for the whole batch, like a remote's BatchReadBlobs.
func (c *ctxRecordingCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	if err := c.wait(ctx); err != nil {
		out := make([]store.BlobResult, len(ds))
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	return c.CAS.GetMany(ctx, ds)
}

// reads are the ways a client reads through the fan-out; each returns the
// error and, on success, whether the blob was served.
var reads = []struct {
	name string
	read func(ctx context.Context, c store.CAS, d digest.Digest) error
}{
	{"Get", func(ctx context.Context, c store.CAS, d digest.Digest) error {
		_, err := readAll(ctx, c, d, 0)
		return err
	}},
	{"GetMany", func(ctx context.Context, c store.CAS, d digest.Digest) error {
		return c.GetMany(ctx, []digest.Digest{d})[0].Err
	}},
	{"FindMissing", func(ctx context.Context, c store.CAS, d digest.Digest) error {
		missing, err := c.FindMissing(ctx, []digest.Digest{d})
		if err == nil && len(missing) > 0 {
			return status.Error(codes.NotFound, "reported missing")
		}
		return err
	}},
}

func TestOnlyTheLastTierRetries(t *testing.T) {
	t.Log("a remote with a later tier behind it gets one attempt (store.WithFallback); the last one keeps its retries for reads, but not for FindMissing, where \"missing\" is a safe answer")
	d, _ := blob("in r2 only")
	for _, rd := range reads {
		t.Run(rd.name, func(t *testing.T) {
			l1, l2 := &ctxLog{}, &ctxLog{}
			tiers := []fanout.Tier{
				{Name: "r1", CAS: &ctxRecordingCAS{CAS: memoryWith(t), log: l1}},
				{Name: "r2", CAS: &ctxRecordingCAS{CAS: memoryWith(t, "in r2 only"), log: l2}},
			}
			c := fanout.NewCAS(store.NewMemory(), tiers, fanout.Options{})
			if err := rd.read(context.Background(), c, d); err != nil {
				t.Fatalf("%s: %v", rd.name, err)
			}
			if got, _ := l1.get(); len(got) != 1 || !got[0] {
				t.Errorf("r1 calls with fallback %v; want [true]", got)
			}
			wantLast := rd.name == "FindMissing"
			if got, _ := l2.get(); len(got) != 1 || got[0] != wantLast {
				t.Errorf("r2 calls with fallback %v; want [%v]", got, wantLast)
			}
		})
	}
}

func TestStalledTierIsCutOff(t *testing.T) {
	t.Log("a first remote that accepts calls but never answers must not hold a read the second can serve; the cut-off is reported as a stall")
	d, _ := blob("in r2 only")
	for _, rd := range reads {
		t.Run(rd.name, func(t *testing.T) {
			l1 := &ctxLog{}
			tiers := []fanout.Tier{
				{Name: "r1", CAS: &ctxRecordingCAS{CAS: memoryWith(t, "in r2 only"), log: l1, hang: true}},
				{Name: "r2", CAS: memoryWith(t, "in r2 only")},
			}
			// The test does not depend on the delay: r1 never answers, so
			// only the cut-off can end its call. It is long enough for the
			// call to get past the concurrency limiter to r1 first (at
			// 1 ms a loaded machine could cut it off before r1 saw it).
			c := fanout.NewCAS(store.NewMemory(), tiers, fanout.Options{FailoverDelay: 100 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := rd.read(ctx, c, d); err != nil {
				t.Fatalf("%s: %v", rd.name, err)
			}
			// A read hedged with r2 leaves r1's call to be cut off in the
			// background.
			testutil.Eventually(t, "r1's call cut off as stalled (so its breaker counts it)", func() bool {
				_, stalled := l1.get()
				return stalled == 1
			})
		})
	}
}

func TestAllTiersStalledOrDownKeepsTheCode(t *testing.T) {
	t.Log("a stalled first remote and a down last one: no remote could answer, so the client gets UNAVAILABLE, not NOT_FOUND")
	d, _ := blob("anywhere")
	tiers := []fanout.Tier{
		{Name: "r1", CAS: &ctxRecordingCAS{CAS: memoryWith(t), log: &ctxLog{}, hang: true}},
		{Name: "r2", CAS: downCAS{}},
	}
	c := fanout.NewCAS(store.NewMemory(), tiers, fanout.Options{FailoverDelay: time.Millisecond})
	_, err := readAll(context.Background(), c, d, 0)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Get: %v; want UNAVAILABLE", err)
	}
}

// switchableCAS is base until down is set, then an unreachable remote.
type switchableCAS struct {
	store.BasicCAS
	down atomic.Bool
}

func (s *switchableCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if s.down.Load() {
		return downCAS{}.FindMissing(ctx, ds)
	}
	return s.BasicCAS.FindMissing(ctx, ds)
}

func (s *switchableCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if s.down.Load() {
		return downCAS{}.Get(ctx, d, offset)
	}
	return s.BasicCAS.Get(ctx, d, offset)
}

func TestDownRemoteIsNotReportedHoldingBlobs(t *testing.T) {
	d, _ := blob("only r1 has it")
	for _, tc := range []struct {
		name, why string
		learn     func(c store.CAS, r1 *switchableCAS, breakerOpen *atomic.Bool)
	}{
		{"breaker open", "once the remote's breaker is open its cached answers stop counting",
			func(_ store.CAS, _ *switchableCAS, open *atomic.Bool) { open.Store(true) }},
		{"read failed as unreachable", "a read that finds the remote unreachable drops its cached answers",
			func(c store.CAS, _ *switchableCAS, _ *atomic.Bool) {
				_, _ = readAll(context.Background(), c, d, 0)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			r1 := &switchableCAS{BasicCAS: memoryWith(t, "only r1 has it")}
			var open atomic.Bool
			// r1 behind an existence cache whose breaker is open, as castd's
			// builder wraps every remote (pkg/proxy/build.go).
			tiers := []fanout.Tier{{Name: "r1", CAS: store.NewExistenceCachingCAS(store.WithGenericFastPaths(r1), time.Hour, 1000, &clock.Fake{}, open.Load)}}
			c := fanout.NewCAS(store.NewMemory(), tiers, fanout.Options{})
			if !has(t, c, d) {
				t.Fatal("r1's blob reported missing while r1 is up")
			}
			r1.down.Store(true)
			tc.learn(c, r1, &open)
			if has(t, c, d) {
				t.Error("the blob of a remote known to be down is still reported present")
			}
		})
	}
}

// stallingAC never answers GetActionResult until its context ends.
type stallingAC struct{ store.ActionCache }

func (stallingAC) GetActionResult(ctx context.Context, _ digest.Digest) (*repb.ActionResult, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

func TestStalledActionCacheIsCutOff(t *testing.T) {
	t.Log("a stalled first action cache must not hold a lookup the second can answer")
	action, _ := blob("action")
	r2 := store.NewMemory()
	want := &repb.ActionResult{ExitCode: 3}
	if err := r2.UpdateActionResult(context.Background(), action, want); err != nil {
		t.Fatal(err)
	}
	tiers := []fanout.ACTier{{Name: "r1", AC: stallingAC{}}, {Name: "r2", AC: r2}}
	fac := fanout.NewActionCache(store.NewMemory(), tiers, store.NewMemory(), fanout.ACOptions{FailoverDelay: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := fac.GetActionResult(ctx, action)
	if err != nil || got.GetExitCode() != 3 {
		t.Fatalf("GetActionResult = %v, %v; want r2's result", got, err)
	}
}
