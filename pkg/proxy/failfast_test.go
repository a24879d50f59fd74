package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/proxy"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// attempts sums castd_upstream_requests_total for method in reg; "" sums
// every method.
func attempts(t *testing.T, reg *prometheus.Registry, method string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != "castd_upstream_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" && (method == "" || l.GetValue() == method) {
					n += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return n
}

func TestRetryLimitAndBreakerFromConfig(t *testing.T) {
	const noRetries = "connection-config: {retry-limit: 0}"
	for _, tc := range []struct {
		name, why    string
		tuning, conn string // cache.remotes, and the server's own keys
		reads, calls int
	}{
		// The read's first call (GetCapabilities, to learn the remote's
		// limits) fails, and is the one retried.
		{"retry-limit 0", "0 means no retries, as it does in the upstream client", "", noRetries, 1, 1},
		{"retry-limit unset", "an unset limit is the client's default of 4 retries", "", "", 1, 1 + defaults.RetryLimit},
		{"retry-limit 2", "a set limit is used as it is", "", "connection-config: {retry-limit: 2}", 1, 3},
		// Six reads: one more than the default breaker (5) lets through.
		{"breaker after 2 failures", "cache.remotes.breaker-failures opens the breaker after that many failures; later reads fail fast without a call", "breaker-failures: 2", noRetries, 6, 2},
		{"breaker off", "off disables the breaker: every read calls the remote", "breaker-failures: off", noRetries, 6, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			if n := callsForReads(t, tc.tuning, tc.conn, tc.reads); n != tc.calls {
				t.Errorf("%d calls to the remote after %d reads; want %d", n, tc.reads, tc.calls)
			}
		})
	}
}

// callsForReads builds a Set whose only remote is down, with tuning as
// cache.remotes and conn in its server entry, makes reads reads of
// distinct blobs (each must fail UNAVAILABLE) and returns the calls the
// remote saw. Retry waits return at once.
func callsForReads(t *testing.T, tuning, conn string, reads int) int {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := proxy.Options{Registerer: reg, Dial: []grpcclient.Option{grpcclient.WithClock(clock.NewFake(time.Unix(0, 0)))}}
	set, _ := newSetWith(t, t.TempDir(), fmt.Sprintf(`
cache:
  remotes: {%s}
artifacts:
  servers:
  - {url: grpc://127.0.0.1:1, type: storage, push: false, %s}
`, tuning, conn), opts)
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range reads {
		// A read: FindMissing asks every remote once whatever the
		// limit ("missing" is a safe answer), reads of the last remote
		// keep its retries.
		if _, err := cas.Get(context.Background(), digest.OfBytes([]byte{byte(i)}), 0); status.Code(err) != codes.Unavailable {
			t.Fatalf("read %d from the only remote, down: %v; want UNAVAILABLE", i, err)
		}
	}
	return attempts(t, reg, "")
}

func TestStatusShowsHealthPerRole(t *testing.T) {
	t.Log("status reports each role of a remote apart: a refused or down role does not hide the others")
	set, _ := newSet(t, t.TempDir(), `
artifacts:
  servers:
  - {url: grpc://127.0.0.1:1, type: all, push: false, connection-config: {retry-limit: 0}}
`)
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cas.Get(context.Background(), digest.OfBytes([]byte("x")), 0)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Get: %v; want UNAVAILABLE (the only remote is down)", err)
	}
	rs := set.Remotes()
	if len(rs) != 1 {
		t.Fatalf("%d remotes; want 1", len(rs))
	}
	if rs[0].Health != grpcclient.HealthDown {
		t.Errorf("health %q; want down", rs[0].Health)
	}
	got := map[grpcclient.Role]string{}
	for _, h := range rs[0].PerRole {
		got[h.Role] = h.Health
	}
	want := map[grpcclient.Role]string{grpcclient.RoleCAS: "down", grpcclient.RoleActionCache: "unknown", grpcclient.RoleAsset: "unknown"}
	for role, h := range want {
		if got[role] != h {
			t.Errorf("role %s health %q; want %q (all: %v)", role, got[role], h, got)
		}
	}
}
