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

func TestRetryLimitFromConfig(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		conn      string
		attempts  int
	}{
		{"retry-limit 0", "0 means no retries, as it does in the upstream client", "connection-config: {retry-limit: 0}", 1},
		{"retry-limit unset", "an unset limit is the client's default of 4 retries", "", 1 + grpcclient.DefaultRetryLimit},
		{"retry-limit 2", "a set limit is used as it is", "connection-config: {retry-limit: 2}", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			reg := prometheus.NewRegistry()
			opts := proxy.Options{Registerer: reg, Dial: []grpcclient.Option{grpcclient.WithClock(clock.NewFake(time.Unix(0, 0)))}}
			set, _ := newSetWith(t, t.TempDir(), fmt.Sprintf(`
artifacts:
  servers:
  - {url: grpc://127.0.0.1:1, type: storage, push: false, %s}
`, tc.conn), opts)
			cas, err := set.CAS(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			// A read: FindMissing asks every remote once whatever the
			// limit ("missing" is a safe answer), reads of the last remote
			// keep its retries.
			_, err = cas.Get(context.Background(), digest.OfBytes([]byte("x")), 0)
			if code := status.Code(err); code != codes.Unavailable {
				t.Fatalf("read from the only remote, down: %v, want Unavailable", err)
			}
			// The read's first call (GetCapabilities, to learn the
			// remote's limits) fails, and is the one retried.
			if n := attempts(t, reg, ""); n != tc.attempts {
				t.Errorf("%d calls to the remote; want %d", n, tc.attempts)
			}
		})
	}
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
