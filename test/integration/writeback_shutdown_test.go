package integration_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/castd/castd/internal/testutil"
)

func TestWritebackSIGTERMWithUnreachablePushRemote(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		server    func(t *testing.T) string // the workstation's server entry
	}{
		{"nothing listens", "pushes to grpc://127.0.0.1:1 fail or wait for a connection that never comes",
			func(*testing.T) string {
				return "{url: grpc://127.0.0.1:1, type: storage, push: true}"
			}},
		{"certificate rejected", "a TLS remote whose certificate castd does not trust fails every push",
			func(t *testing.T) string {
				m := startMTLSUpstream(t) // castd is given no server-cert: the system roots reject it
				return fmt.Sprintf("{url: %s, type: storage, push: true}", m.url)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: SIGTERM must stop castd within its drain time whatever
			// the push remote does (see tc.why), leaving the pending push on
			// disk for the next start.
			l := newLayout(t)
			cfg := fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", tc.server(t))
			ws, conn, ctl := startWorkstation(t, l, cfg)
			if err := instanceWrite(ctxFor(t, time.Minute), conn, "", randomBlob(4000)); err != nil {
				t.Fatal(err)
			}
			testutil.EventuallyWithin(t, time.Minute, "a failed push attempt", func() bool { return ctlStatus(t, ctl).GetQueue().GetFailures() > 0 })
			ws.signal(syscall.SIGTERM)
			if code := ws.wait(60 * time.Second); code != 0 {
				t.Errorf("castd exited with %d after SIGTERM, want 0", code)
			}
			_, _, ctl = startWorkstation(t, l, cfg)
			if d := ctlStatus(t, ctl).GetQueue().GetDepth(); d != 1 {
				t.Errorf("queue depth after the restart = %d, want the 1 entry left on disk", d)
			}
		})
	}
}
