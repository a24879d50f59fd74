package proxy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/proxy"
)

// projectConf is a project.conf recommending u.
func projectConf(u *upstreamServer) []byte {
	return fmt.Appendf(nil, "name: demo\nartifacts:\n- {url: %s, type: all}\n", u.url)
}

// reopen opens a Set over the store in dir, as a castd restart does, and
// returns it with a function that closes both.
func reopen(t *testing.T, dir string) (*proxy.Set, func()) {
	t.Helper()
	return reopenWith(t, dir, "log-level: info\n", proxy.Options{})
}

// reopenWith is reopen with a user config and options.
func reopenWith(t *testing.T, dir, config string, opts proxy.Options) (*proxy.Set, func()) {
	t.Helper()
	set, local := openSet(t, dir, config, opts)
	return set, func() { set.Close(context.Background()); local.Close() }
}

func TestRegistrationReplacedWhenProjectConfChanges(t *testing.T) {
	t.Log("registering a project again after its project.conf changed replaces its remotes under the same instance name; the old remote leaves status")
	first, second := newUpstream(t), newUpstream(t)
	dir, proj := t.TempDir(), t.TempDir()
	set, _ := newSet(t, dir, "log-level: info\n")
	inst, _, err := set.RegisterProject(context.Background(), "", projectConf(first), proj)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := set.RegisterProject(context.Background(), "", projectConf(second), proj)
	if err != nil || again != inst {
		t.Fatalf("re-register = %q, %v; want the same instance %q", again, err, inst)
	}
	if got := set.Instances(); len(slices.DeleteFunc(slices.Clone(got), func(n string) bool { return !strings.HasPrefix(n, "p/") })) != 1 {
		t.Errorf("instances = %v, want one project instance", got)
	}
	if urls := remoteURLs(set); len(urls) != 1 || urls[0] != second.url {
		t.Errorf("status lists %v, want only %s", urls, second.url)
	}
	cas, err := set.CAS(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	_, d := putBlob(t, second.mem, 1500)
	rc, err := cas.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatalf("read through the replaced registration from the new remote: %v", err)
	}
	rc.Close()
}

func TestRegistrationRestoredFromProjectDir(t *testing.T) {
	t.Log("a restart re-reads each registered project's project.conf: an edited one brings its new remotes, a deleted directory drops the registration")
	first, second := newUpstream(t), newUpstream(t)
	dir, proj, gone := t.TempDir(), t.TempDir(), t.TempDir()
	set, closeSet := reopen(t, dir)
	inst, _, err := set.RegisterProject(context.Background(), "", projectConf(first), proj)
	if err != nil {
		t.Fatal(err)
	}
	goneInst, _, err := set.RegisterProject(context.Background(), "other", projectConf(first), gone)
	if err != nil {
		t.Fatal(err)
	}
	closeSet()

	if err := os.WriteFile(filepath.Join(proj, "project.conf"), projectConf(second), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	set, closeSet = reopen(t, dir)
	defer closeSet()
	if urls := remoteURLs(set); len(urls) != 1 || urls[0] != second.url {
		t.Errorf("after the restart status lists %v, want only %s (from the edited project.conf)", urls, second.url)
	}
	if _, err := set.CAS(context.Background(), inst); err != nil {
		t.Errorf("the registration of an existing directory did not survive the restart: %v", err)
	}
	if _, err := set.CAS(context.Background(), goneInst); err == nil {
		t.Errorf("the registration of a deleted directory survived the restart")
	}
}

func TestRegistrationTTL(t *testing.T) {
	t.Log("a registration no request used for longer than registration-ttl is dropped with its remotes; one in use stays")
	idle, busy := newUpstream(t), newUpstream(t)
	dir := t.TempDir()
	clock := clock.NewFake(time.Unix(1_000_000, 0))
	set, _ := newSetWith(t, dir, "registration-ttl: 48h\n", proxy.Options{Clock: clock})
	idleInst, _, err := set.RegisterProject(context.Background(), "idle", projectConf(idle), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	busyInst, _, err := set.RegisterProject(context.Background(), "busy", projectConf(busy), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Hour)
	if _, err := set.CAS(context.Background(), busyInst); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Hour)
	proxy.ExpireRegistrations(set)

	if _, err := set.CAS(context.Background(), idleInst); err == nil {
		t.Error("a registration unused for 60h with registration-ttl 48h is still served")
	}
	if _, err := set.CAS(context.Background(), busyInst); err != nil {
		t.Errorf("a registration used 30h ago was dropped: %v", err)
	}
	if urls := remoteURLs(set); len(urls) != 1 || urls[0] != busy.url {
		t.Errorf("status lists %v, want only the used registration's remote %s", urls, busy.url)
	}
}

func TestRegistrationTTLAtStart(t *testing.T) {
	t.Log("a castd started after a registration went unused for longer than registration-ttl drops it; a recent one is restored")
	up := newUpstream(t)
	dir := t.TempDir()
	clock := clock.NewFake(time.Unix(1_000_000, 0))
	opts := proxy.Options{Clock: clock}
	set, closeSet := reopenWith(t, dir, "registration-ttl: 48h\n", opts)
	old, _, err := set.RegisterProject(context.Background(), "old", projectConf(up), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	closeSet()

	clock.Advance(47 * time.Hour)
	set, closeSet = reopenWith(t, dir, "registration-ttl: 48h\n", opts)
	recent, _, err := set.RegisterProject(context.Background(), "recent", projectConf(up), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	closeSet()

	clock.Advance(2 * time.Hour)
	set, closeSet = reopenWith(t, dir, "registration-ttl: 48h\n", opts)
	defer closeSet()
	if _, err := set.CAS(context.Background(), old); err == nil {
		t.Error("a registration unused for 49h was restored with registration-ttl 48h")
	}
	if _, err := set.CAS(context.Background(), recent); err != nil {
		t.Errorf("a registration used 2h ago was not restored: %v", err)
	}
}
