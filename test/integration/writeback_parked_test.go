package integration_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/testutil"
)

func TestWritebackParksRefusedRoleUntilRestart(t *testing.T) {
	// Why: a push remote that refuses us for good (here UNAUTHENTICATED:
	// a wrong access token, still wrong after castd re-read it) gets its
	// role parked, shown by bst status, instead of being retried forever in
	// silence; the entries stay on disk, and once the token is fixed and
	// castd restarted, they all arrive.
	user := startTokenUpstream(t)
	l := newLayout(t)
	token := filepath.Join(l.base, "push-token")
	writeFile(t, token, []byte("not-the-token\n"))
	cfg := fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: all, push: true, auth: {access-token: %s}, connection-config: {retry-limit: 1, retry-delay: 10, request-timeout: 2}}\n", user.url, token)
	ws, conn, ctl := startWorkstation(t, l, cfg)
	ctx := ctxFor(t, time.Minute)
	b, action := randomBlob(3000), randomBlob(64).d
	if err := instanceWrite(ctx, conn, "", b); err != nil {
		t.Fatal(err)
	}
	if err := acWrite(ctx, conn, action, b.d); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, time.Minute, "the CAS role parked", func() bool { return len(ctlStatus(t, ctl).GetQueue().GetParked()) > 0 })

	var st struct {
		Queue struct {
			Parked []struct {
				Role, Code string
				Entries    int
			}
		}
	}
	r := bst(t, ws.socket, "", "status", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("bst status --json: %v\n%s", err, r.stdout)
	}
	if p := st.Queue.Parked; len(p) != 1 || p[0].Role != "cas" || p[0].Code != "Unauthenticated" || p[0].Entries != 2 {
		t.Errorf("bst status parked = %+v, want the cas role parked with Unauthenticated and 2 entries (the action result waits for its blob)", p)
	}
	if text := bst(t, ws.socket, "", "status").stdout; !strings.Contains(text, "cas refused with Unauthenticated") {
		t.Errorf("bst status does not show the parked role:\n%s", text)
	}
	if n := strings.Count(ws.logs.String(), "remote refuses pushes"); n != 1 {
		t.Errorf("%d parking warnings, want 1 per remote and role", n)
	}

	writeFile(t, token, []byte(upstreamToken+"\n"))
	ws.kill9()
	_, _, ctl = startWorkstation(t, l, cfg)
	testutil.EventuallyWithin(t, time.Minute, "the parked entries pushed after the restart", func() bool { return ctlStatus(t, ctl).GetQueue().GetDepth() == 0 })
	if !user.has(t, b.d) {
		t.Error("the blob never reached the push remote")
	}
	if _, err := repb.NewActionCacheClient(user.conn(t)).GetActionResult(ctxFor(t, 10*time.Second),
		&repb.GetActionResultRequest{ActionDigest: action, DigestFunction: repb.DigestFunction_SHA256}); err != nil {
		t.Errorf("the action result never reached the push remote: %v", err)
	}
}
