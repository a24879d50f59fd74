package grpcclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

func TestFallbackCallMakesOneAttempt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		why      string
		fallback bool
		calls    int
	}{
		{"tier with a fallback", "a remote the request does not need must not hold it with retry sleeps", true, 1},
		{"last tier", "the last tier that could answer keeps the configured retries", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			ts := startServer(t, serverConfig{unary: (&failing{code: codes.Unavailable}).unary})
			clock := newFakeClock()
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, RetryLimit: 3}, grpcclient.WithClock(clock), grpcclient.WithBreaker(-1, 0))
			ctx := context.Background()
			if tc.fallback {
				ctx = store.WithFallback(ctx)
			}
			_, err := r.CAS().FindMissing(ctx, []digest.Digest{digest.OfBytes([]byte("x"))})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("FindMissing: %v; want UNAVAILABLE", err)
			}
			if n := ts.count("FindMissingBlobs"); n != tc.calls {
				t.Errorf("server saw %d calls; want %d", n, tc.calls)
			}
			if n := len(clock.Sleeps()); n != tc.calls-1 {
				t.Errorf("%d backoff sleeps; want %d", n, tc.calls-1)
			}
		})
	}
}

func TestRetryLimitZeroMeansNoRetries(t *testing.T) {
	t.Log("RetryLimit 0 turns retries off; only a negative limit means the default")
	ts := startServer(t, serverConfig{unary: (&failing{code: codes.Unavailable}).unary})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, RetryLimit: 0}, grpcclient.WithBreaker(-1, 0))
	if err := findOne(r); status.Code(err) != codes.Unavailable {
		t.Fatalf("FindMissing: %v; want UNAVAILABLE", err)
	}
	if n := ts.count("FindMissingBlobs"); n != 1 {
		t.Errorf("server saw %d calls; want 1", n)
	}
}

// capsGate holds GetCapabilities calls until release is closed.
type capsGate struct {
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (g *capsGate) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if strings.HasSuffix(info.FullMethod, "/GetCapabilities") {
		g.once.Do(func() { close(g.entered) })
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h(ctx, req)
}

func TestCapabilitiesWaitEndsWithTheCallersContext(t *testing.T) {
	t.Log("a caller must not queue behind another caller's slow Capabilities call: it waits only as long as its own context")
	g := &capsGate{entered: make(chan struct{}), release: make(chan struct{})}
	ts := startServer(t, serverConfig{unary: g.unary})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	first := make(chan error, 1)
	go func() { _, err := r.Capabilities(context.Background()); first <- err }()
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { _, err := r.Capabilities(ctx); second <- err }()
	cancel()
	select {
	case err := <-second:
		if status.Code(err) != codes.Canceled {
			t.Errorf("second caller: %v; want CANCELED", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second caller is still waiting after its context ended")
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	if _, err := r.Capabilities(context.Background()); err != nil {
		t.Fatalf("cached: %v", err)
	}
	if n := ts.count("GetCapabilities"); n != 1 {
		t.Errorf("server saw %d GetCapabilities calls; want 1 (shared, then cached)", n)
	}
}

// refuseAC answers every ActionCache call with code.
func refuseAC(code codes.Code) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if strings.Contains(info.FullMethod, "ActionCache/") {
			return nil, status.Error(code, "injected")
		}
		return h(ctx, req)
	}
}

func TestRolesHaveTheirOwnHealth(t *testing.T) {
	t.Log("a remote that refuses the action cache must still serve blobs: health and breaker are per role")
	ts := startServer(t, serverConfig{unary: refuseAC(codes.PermissionDenied)})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr}, grpcclient.WithBreaker(2, time.Hour))
	ctx := context.Background()
	action := digest.OfBytes([]byte("action"))
	for range 2 {
		if _, err := r.ActionCache().GetActionResult(ctx, action); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("GetActionResult: %v; want PERMISSION_DENIED", err)
		}
	}
	if got := r.BreakerState(grpcclient.RoleActionCache); got != grpcclient.StateOpen {
		t.Errorf("action-cache breaker %q; want open", got)
	}
	if err := findOne(r); err != nil {
		t.Fatalf("FindMissing with the action cache refused: %v", err)
	}
	if n := ts.count("FindMissingBlobs"); n != 1 {
		t.Errorf("server saw %d FindMissingBlobs; want 1", n)
	}
	health := map[grpcclient.Role]grpcclient.RoleHealth{}
	for _, h := range r.Health() {
		health[h.Role] = h
	}
	if h := health[grpcclient.RoleCAS]; h.Health != grpcclient.HealthOK || h.Breaker != grpcclient.StateClosed {
		t.Errorf("cas health %+v; want ok and closed", h)
	}
	if h := health[grpcclient.RoleActionCache]; h.Health != grpcclient.HealthDown || h.Code != codes.PermissionDenied {
		t.Errorf("action-cache health %+v; want down (breaker open) after PERMISSION_DENIED", h)
	}
	if h := health[grpcclient.RoleAsset]; h.Health != grpcclient.HealthUnknown {
		t.Errorf("asset health %+v; want unknown (never called)", h)
	}
}

func TestPermanentRefusalIsReported(t *testing.T) {
	t.Log("a permanent answer marks only its role refused, without waiting for the breaker")
	ts := startServer(t, serverConfig{unary: refuseAC(codes.Unimplemented)})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr}, grpcclient.WithBreaker(5, time.Hour))
	if _, err := r.ActionCache().GetActionResult(context.Background(), digest.OfBytes([]byte("a"))); status.Code(err) != codes.Unimplemented {
		t.Fatalf("GetActionResult: %v; want UNIMPLEMENTED", err)
	}
	for _, h := range r.Health() {
		want := grpcclient.HealthUnknown
		if h.Role == grpcclient.RoleActionCache {
			want = grpcclient.HealthRefused
		}
		if h.Health != want {
			t.Errorf("%s health %q; want %q", h.Role, h.Health, want)
		}
	}
}

func TestPermanent(t *testing.T) {
	t.Log("one classification of remote answers, shared by reads and write-back")
	for code, want := range map[codes.Code]bool{
		codes.Unimplemented: true, codes.PermissionDenied: true, codes.Unauthenticated: true,
		codes.InvalidArgument: true, codes.FailedPrecondition: true,
		codes.Unavailable: false, codes.DeadlineExceeded: false, codes.ResourceExhausted: false,
		codes.Aborted: false, codes.Internal: false, codes.Unknown: false,
		codes.NotFound: false, codes.OK: false, codes.Canceled: false,
	} {
		if got := grpcclient.Permanent(code); got != want {
			t.Errorf("Permanent(%v) = %v; want %v", code, got, want)
		}
	}
}

// hang holds FindMissingBlobs until the call's context ends, and closes
// entered when the first call arrives.
type hang struct {
	once    sync.Once
	entered chan struct{}
}

func (h *hang) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if strings.HasSuffix(info.FullMethod, "/FindMissingBlobs") {
		h.once.Do(func() { close(h.entered) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return next(ctx, req)
}

func TestStallCountsTowardTheBreaker(t *testing.T) {
	for _, tc := range []struct {
		name  string
		why   string
		cause error
		state string
	}{
		{"cut off for stalling", "a fan-out giving up on a remote that did not answer in time is the remote's failure", store.ErrStalled, grpcclient.StateOpen},
		{"caller gone", "a client giving up says nothing about the remote", context.Canceled, grpcclient.StateClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			h := &hang{entered: make(chan struct{})}
			ts := startServer(t, serverConfig{unary: h.unary})
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr}, grpcclient.WithBreaker(1, time.Hour))
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error, 1)
			go func() { done <- findOneCtx(ctx, r) }()
			<-h.entered
			cancel(tc.cause)
			if err := <-done; err == nil {
				t.Fatal("FindMissing succeeded; want the cancellation")
			}
			if got := r.BreakerState(grpcclient.RoleCAS); got != tc.state {
				t.Errorf("breaker %q; want %q", got, tc.state)
			}
		})
	}
}

func findOneCtx(ctx context.Context, r *grpcclient.Remote) error {
	_, err := r.CAS().FindMissing(ctx, []digest.Digest{digest.OfBytes([]byte("t"))})
	return err
}

// logBuffer collects JSON log records; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the records whose msg is msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestRemoteStateChangesAreLogged(t *testing.T) {
	t.Log("each state change of a remote role is a warning naming url, role and code, rate-limited; each RPC a debug line")
	f := &failing{code: codes.Unavailable}
	ts := startServer(t, serverConfig{unary: f.unary})
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := newFakeClock()
	const coolDown = defaults.LogInterval / 2 // a probe, and flapping, within one log interval
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, Name: "peer"},
		grpcclient.WithLogger(logger), grpcclient.WithClock(clock), grpcclient.WithBreaker(2, coolDown))
	for range 2 {
		_ = findOne(r) // down, then the breaker opens
	}
	states := map[string]map[string]any{}
	for _, rec := range logs.records(t, "upstream: remote state changed") {
		if rec["level"] != "WARN" {
			t.Errorf("state change logged at %v; want WARN", rec["level"])
		}
		states[rec["state"].(string)] = rec
	}
	for _, want := range []string{"down", "breaker open"} {
		rec, ok := states[want]
		if !ok {
			t.Fatalf("no %q state change logged; got %v", want, states)
		}
		if rec["url"] != "grpc://"+ts.addr || rec["role"] != "cas" || rec["code"] != "Unavailable" || rec["remote"] != "peer" {
			t.Errorf("%q record %v; want url, role cas and code Unavailable", want, rec)
		}
	}
	if n, calls := len(logs.records(t, "upstream rpc")), ts.count("FindMissingBlobs"); n != calls {
		t.Errorf("%d debug rpc lines for %d calls", n, calls)
	}

	t.Log("flapping: the same change within the interval is held back and counted")
	f.set(codes.OK)
	clock.Advance(coolDown)
	if err := findOne(r); err != nil { // the probe after the cool-down closes the breaker
		t.Fatalf("probe: %v", err)
	}
	for _, c := range []codes.Code{codes.Unavailable, codes.OK, codes.Unavailable, codes.OK} {
		f.set(c)
		_ = findOne(r)
	}
	if n := countState(logs.records(t, "upstream: remote state changed"), "down"); n != 1 {
		t.Errorf("%d down lines within the interval; want 1", n)
	}
	clock.Advance(defaults.LogInterval)
	f.set(codes.Unavailable)
	_ = findOne(r)
	downs := recordsWithState(logs.records(t, "upstream: remote state changed"), "down")
	if len(downs) != 2 || downs[1]["suppressed"] != float64(2) {
		t.Errorf("down lines %v; want a second one reporting 2 suppressed", downs)
	}
}

func countState(recs []map[string]any, state string) int { return len(recordsWithState(recs, state)) }

func recordsWithState(recs []map[string]any, state string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["state"] == state {
			out = append(out, r)
		}
	}
	return out
}
