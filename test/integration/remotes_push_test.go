package integration_test

import (
	"fmt"
	"testing"
	"time"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/internal/testutil"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// register registers a project whose project.conf recommends project (with
// push: true, which castd must ignore) and returns its instance name.
func register(t *testing.T, ctl castdpb.ControlClient, dir string, project *upstream) string {
	t.Helper()
	conf := fmt.Sprintf("name: demo\nartifacts:\n- %s\n", project.serverYAML("all", true))
	resp, err := ctl.RegisterProject(ctxFor(t, 10*time.Second), &castdpb.RegisterProjectRequest{ProjectConf: []byte(conf), BaseDir: dir})
	if err != nil {
		t.Fatalf("RegisterProject: %v", err)
	}
	return resp.GetInstanceName()
}

// drained waits until the workstation's write-back queue is empty and has
// completed at least n entries.
func drained(t *testing.T, ctl castdpb.ControlClient, n int64) {
	t.Helper()
	testutil.EventuallyWithin(t, 30*time.Second, "the write-back queue to drain", func() bool {
		q := ctlStatus(t, ctl).GetQueue()
		return q.GetDepth() == 0 && q.GetCompleted() >= n
	})
}

func TestRemotesPushOnlyToUserRemote(t *testing.T) {
	user, project := startTokenUpstream(t), startPlainUpstream(t)
	l := newLayout(t)
	_, conn, ctl := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", user.serverYAML("all", true)))
	instance := register(t, ctl, l.base, project)
	ctx := ctxFor(t, time.Minute)

	blobs := []blob{randomBlob(100), randomBlob(5000), randomBlob(40 << 10)}
	if err := instanceWrite(ctx, conn, instance, blobs...); err != nil {
		t.Fatal(err)
	}
	drained(t, ctl, int64(len(blobs)))
	t.Run("status", func(t *testing.T) {
		// Why: Status shows where castd listens and which remote it may
		// push to: the user's, never the project's.
		st := ctlStatus(t, ctl)
		if len(st.GetListeners()) != 1 || st.GetListeners()[0] != "unix:"+l.socket {
			t.Errorf("listeners = %q, want [unix:%s]", st.GetListeners(), l.socket)
		}
		u, p := remoteStatus(t, st, user.url), remoteStatus(t, st, project.url)
		if !u.GetPush() || u.GetOrigin() != "user" || p.GetPush() || p.GetOrigin() != "project" {
			t.Errorf("remotes: user push=%v origin=%q, project push=%v origin=%q", u.GetPush(), u.GetOrigin(), p.GetPush(), p.GetOrigin())
		}
	})
	for i, b := range blobs {
		t.Run(fmt.Sprintf("blob %d", i), func(t *testing.T) {
			// Why: a write reaches the user's push remote and never the
			// project-recommended one, whatever its project.conf says.
			if !user.has(t, b.d) {
				t.Error("the user's push remote lacks the blob after the queue drained")
			}
			if project.has(t, b.d) {
				t.Error("the blob reached the project-recommended remote")
			}
		})
	}
}

func TestRemotesOverrideProjectCaches(t *testing.T) {
	// Why: with override-project-caches the project's remote is never
	// contacted, neither for reads nor for pushes.
	user, project := startPlainUpstream(t), startPlainUpstream(t)
	l := newLayout(t)
	_, conn, ctl := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  override-project-caches: true\n  servers:\n  - %s\n", user.serverYAML("all", true)))
	instance := register(t, ctl, l.base, project)
	ctx := ctxFor(t, time.Minute)
	only := randomBlob(1000)
	if err := batchUpdate(ctx, project.conn(t), only); err != nil {
		t.Fatal(err)
	}
	if _, err := instanceRead(ctx, conn, instance, only.d); grpcstatus.Code(err) != codes.NotFound {
		t.Errorf("read of a blob only the overridden project remote has = %v, want NOT_FOUND", err)
	}
	written := randomBlob(2000)
	if err := instanceWrite(ctx, conn, instance, written); err != nil {
		t.Fatal(err)
	}
	drained(t, ctl, 1)
	if calls, _ := casCalls(project); calls != 0 {
		t.Errorf("the overridden project remote received %d CAS calls, want 0", calls)
	}
	if !user.has(t, written.d) || project.has(t, written.d) {
		t.Error("the write must reach the user remote only")
	}
}

func TestRemotesWriteBackSurvivesKill9(t *testing.T) {
	// Why: an acknowledged write whose push could not happen yet (remote
	// down) is pushed after kill -9 and a restart.
	user := newPlainUpstream(t) // not running yet
	l := newLayout(t)
	cfg := fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", user.serverYAML("storage", true))
	ws, conn, ctl := startWorkstation(t, l, cfg)
	ctx := ctxFor(t, time.Minute)
	blobs := []blob{randomBlob(10), randomBlob(3000), randomBlob(30 << 10)}
	if err := instanceWrite(ctx, conn, "", blobs...); err != nil {
		t.Fatal(err)
	}
	if d := ctlStatus(t, ctl).GetQueue().GetDepth(); d != int64(len(blobs)) {
		t.Fatalf("queue depth %d after the writes, want %d", d, len(blobs))
	}
	ws.kill9()
	user.restart(t)
	_, _, ctl = startWorkstation(t, l, cfg)
	drained(t, ctl, int64(len(blobs)))
	for i, b := range blobs {
		if !user.has(t, b.d) {
			t.Errorf("blob %d was not pushed after the restart", i)
		}
	}
}

func TestRemotesBreakerOpensAndRecovers(t *testing.T) {
	// Why: a dead remote opens its breaker (shown in Status) and, once it
	// is back, a probe after the cool-down closes it again.
	u := startPlainUpstream(t)
	l := newLayout(t)
	_, conn, ctl := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", u.serverYAML("storage", false)))
	ctx := ctxFor(t, 3*time.Minute)
	b := randomBlob(500)
	if err := batchUpdate(ctx, u.conn(t), b); err != nil {
		t.Fatal(err)
	}
	u.kill9()
	testutil.EventuallyWithin(t, 30*time.Second, "the breaker to open", func() bool {
		_, _ = instanceRead(ctx, conn, "", randomBlob(10).d)
		return remoteStatus(t, ctlStatus(t, ctl), u.url).GetBreaker() == "open"
	})
	if h := remoteStatus(t, ctlStatus(t, ctl), u.url).GetHealth(); h != "down" {
		t.Errorf("health of a remote with an open breaker = %q, want down", h)
	}
	u.restart(t)
	testutil.EventuallyWithin(t, 90*time.Second, "the breaker to close", func() bool {
		data, err := instanceRead(ctx, conn, "", b.d)
		return err == nil && len(data) == len(b.data) && remoteStatus(t, ctlStatus(t, ctl), u.url).GetBreaker() == "closed"
	})
}
