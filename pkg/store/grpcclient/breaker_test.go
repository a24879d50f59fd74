package grpcclient_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// breakerGauge reads castd_upstream_breaker_state{remote=name,role=cas}
// from reg.
func breakerGauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "castd_upstream_breaker_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["remote"] == name && labels["role"] == "cas" {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no castd_upstream_breaker_state for %s", name)
	return 0
}

func TestBreaker(t *testing.T) {
	f := &failing{code: codes.Unavailable}
	ts := startServer(t, serverConfig{unary: f.unary})
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, Name: "flaky"},
		grpcclient.WithClock(clock), grpcclient.WithBreaker(3, time.Minute), grpcclient.WithRegisterer(reg))
	steps := []struct {
		name    string
		why     string
		serve   codes.Code    // what the server answers during this step
		advance time.Duration // clock moves before the call
		code    codes.Code    // what the call returns
		calls   int           // calls that reach the server
		state   string
		gauge   float64
	}{
		{"first failure", "one failure does not open the breaker", codes.Unavailable, 0, codes.Unavailable, 1, "closed", 0},
		{"misses do not count", "NOT_FOUND is an answer from a healthy remote and resets the count", codes.NotFound, 0, codes.NotFound, 1, "closed", 0},
		{"one consecutive failure", "counting restarts after the miss", codes.Unavailable, 0, codes.Unavailable, 1, "closed", 0},
		{"two consecutive failures", "still under the threshold of 3", codes.Unavailable, 0, codes.Unavailable, 1, "closed", 0},
		{"third consecutive failure opens", "the threshold reached, the breaker opens", codes.Unavailable, 0, codes.Unavailable, 1, "open", 2},
		{"open fails fast", "while open, calls never reach the remote", codes.OK, 30 * time.Second, codes.Unavailable, 0, "open", 2},
		{"failed probe reopens", "after the cool-down one probe goes out; its failure opens again", codes.Unavailable, 30 * time.Second, codes.Unavailable, 1, "open", 2},
		{"probe succeeds and closes", "a successful probe after the next cool-down closes the breaker", codes.OK, time.Minute, codes.OK, 1, "closed", 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			t.Log(s.why)
			f.set(s.serve)
			clock.Advance(s.advance)
			if s.calls == 1 && s.advance > 0 && r.BreakerState(grpcclient.RoleCAS) != "half-open" {
				t.Errorf("after the cool-down BreakerState() = %q; want half-open", r.BreakerState(grpcclient.RoleCAS))
			}
			before := ts.count("FindMissingBlobs")
			err := findOne(r)
			if status.Code(err) != s.code {
				t.Fatalf("call: %v; want %v", err, s.code)
			}
			if s.calls == 0 && !strings.Contains(err.Error(), "upstream flaky: cas circuit open") {
				t.Errorf("fast failure %q does not say the circuit is open", err)
			}
			if n := ts.count("FindMissingBlobs") - before; n != s.calls {
				t.Errorf("server saw %d calls; want %d", n, s.calls)
			}
			if got := r.BreakerState(grpcclient.RoleCAS); got != s.state {
				t.Errorf("BreakerState() = %q; want %q", got, s.state)
			}
			if got := breakerGauge(t, reg, "flaky"); got != s.gauge {
				t.Errorf("breaker gauge = %v; want %v", got, s.gauge)
			}
		})
	}
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
