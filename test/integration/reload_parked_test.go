package integration_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/castd/castd/internal/testutil"
)

func TestReloadUnparksRefusedRole(t *testing.T) {
	t.Log("a push remote that refused us for good (a wrong token) has its role parked; after fixing the token and " +
		"`systemctl --user reload castd`, the parked entries are retried and arrive, without a restart")
	user := startTokenUpstream(t)
	l := newLayout(t)
	token := filepath.Join(l.base, "push-token")
	writeFile(t, token, []byte("not-the-token\n"))
	remotesYAML := fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: all, push: true, auth: {access-token: %s}, connection-config: {retry-limit: 1, retry-delay: 10, request-timeout: 2}}\n", user.url, token)
	ws, conn, ctl := startWorkstation(t, l, remotesYAML)
	b := randomBlob(3000)
	if err := instanceWrite(ctxFor(t, time.Minute), conn, "", b); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, time.Minute, "the CAS role parked", func() bool { return len(ctlStatus(t, ctl).GetQueue().GetParked()) > 0 })

	writeFile(t, token, []byte(upstreamToken+"\n"))
	reloadConfig(t, ws, l, l.configYAML(remotesYAML), reloadedRE, 1)
	testutil.EventuallyWithin(t, time.Minute, "the parked entry pushed after the reload", func() bool {
		q := ctlStatus(t, ctl).GetQueue()
		return q.GetDepth() == 0 && len(q.GetParked()) == 0
	})
	if !user.has(t, b.d) {
		t.Error("the blob never reached the push remote after the reload")
	}
}
