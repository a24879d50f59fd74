package grpcclient_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// failing makes the server answer every unary call with code while it is
// set; codes.OK lets calls through.
type failing struct {
	mu   sync.Mutex
	code codes.Code
}

func (f *failing) set(c codes.Code) {
	f.mu.Lock()
	f.code = c
	f.mu.Unlock()
}

func (f *failing) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	f.mu.Lock()
	c := f.code
	f.mu.Unlock()
	if c != codes.OK {
		return nil, status.Error(c, "injected")
	}
	return h(ctx, req)
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		why   string
		code  codes.Code
		calls int
	}{
		{"unavailable is retried up to the limit", "transient failures get RetryLimit more attempts", codes.Unavailable, 4},
		{"resource exhausted is retried", "an overloaded remote is transient too", codes.ResourceExhausted, 4},
		{"invalid argument is not retried", "a deterministic rejection would fail the same way again", codes.InvalidArgument, 1},
		{"not found is not retried", "a miss is an answer, not a failure", codes.NotFound, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := &failing{code: tc.code}
			ts := startServer(t, serverConfig{unary: f.unary})
			clock := newFakeClock()
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, RetryLimit: 3, RetryDelay: 100 * time.Millisecond},
				grpcclient.WithClock(clock), grpcclient.WithBreaker(-1, 0))
			if err := findOne(r); status.Code(err) != tc.code {
				t.Fatalf("call: %v; want %v", err, tc.code)
			}
			if n := ts.count("FindMissingBlobs"); n != tc.calls {
				t.Errorf("server saw %d calls; want %d", n, tc.calls)
			}
			waits := clock.Sleeps()
			if len(waits) != tc.calls-1 {
				t.Fatalf("%d backoff waits; want %d", len(waits), tc.calls-1)
			}
			for i, d := range waits {
				base := 100 * time.Millisecond << i
				if d < base/2 || d >= base*3/2 {
					t.Errorf("backoff %d = %v; want %v ± 50%%", i, d, base)
				}
			}
		})
	}
}

func TestRetryRecovers(t *testing.T) {
	t.Log("a remote that comes back during the backoff answers the retried call")
	f := &failing{code: codes.Unavailable}
	ts := startServer(t, serverConfig{unary: f.unary})
	clock := newFakeClock()
	clock.OnSleep(func(time.Duration) { f.set(codes.OK) })
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, RetryLimit: 3}, grpcclient.WithClock(clock))
	if err := findOne(r); err != nil {
		t.Fatalf("call: %v", err)
	}
	if n := ts.count("FindMissingBlobs"); n != 2 {
		t.Errorf("server saw %d calls; want 2", n)
	}
}
