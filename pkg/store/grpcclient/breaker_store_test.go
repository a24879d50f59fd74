package grpcclient_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// total is how many calls of any method the server received.
func (ts *testServer) total() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for _, c := range ts.calls {
		n += c
	}
	return n
}

func TestBreakerCoversFastPaths(t *testing.T) {
	ctx := context.Background()
	data := []byte("a small blob")
	d := digest.OfBytes(data)
	for _, tc := range []struct {
		name string
		call func(store.CAS) error
	}{
		{"GetWith", func(c store.CAS) error {
			_, err := c.GetWith(ctx, d, 0, store.GetHint{ConsumerVerifies: true})
			return err
		}},
		{"GetMany", func(c store.CAS) error { return c.GetMany(ctx, []digest.Digest{d})[0].Err }},
		{"PutWith", func(c store.CAS) error {
			return c.PutWith(ctx, d, bytes.NewReader(data), store.PutHint{Uncached: true})
		}},
		{"PutBytes", func(c store.CAS) error { return c.PutBytes(ctx, d, data, store.PutHint{Verified: true}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log("a fast path is counted by the remote's breaker and fails fast while it is open, like Get and Put")
			f := &failing{code: codes.Unavailable}
			ts := startServer(t, serverConfig{unary: f.unary})
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, Name: "flaky"},
				grpcclient.WithClock(newFakeClock()), grpcclient.WithBreaker(2, time.Minute))
			for i := range 2 {
				if err := tc.call(r.CAS()); status.Code(err) != codes.Unavailable {
					t.Fatalf("call %d: %v; want UNAVAILABLE from the remote", i, err)
				}
			}
			if got := r.BreakerState(grpcclient.RoleCAS); got != "open" {
				t.Fatalf("after two failures BreakerState() = %q; want open", got)
			}
			before := ts.total()
			err := tc.call(r.CAS())
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "cas circuit open") {
				t.Errorf("call while open: %v; want the open circuit's UNAVAILABLE", err)
			}
			if n := ts.total() - before; n != 0 {
				t.Errorf("the server saw %d calls while the breaker was open; want 0", n)
			}
		})
	}
}
