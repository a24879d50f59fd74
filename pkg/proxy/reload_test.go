package proxy_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"
	"github.com/prometheus/client_golang/prometheus"
)

func parseUser(t *testing.T, dir, config string) *policy.Config {
	t.Helper()
	cfg, err := policy.ParseUser(filepath.Join(dir, "castd.yaml"), []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func remoteURLs(set *proxy.Set) []string {
	var out []string
	for _, r := range set.Remotes() {
		out = append(out, r.URL)
	}
	return out
}

func TestReloadSwapsRemotes(t *testing.T) {
	t.Log("a reload serves the new remotes at once, keeps handles taken before it working, and drops unused remotes from status")
	dir := t.TempDir()
	first, second := newUpstream(t), newUpstream(t)
	conf := func(u *upstreamServer) string {
		return fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: storage, push: true}\n", u.url)
	}
	set, _ := newSet(t, dir, conf(first))
	before, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}

	if err := set.Reload(context.Background(), parseUser(t, dir, conf(second))); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	after, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	data, d := putBlob(t, second.mem, 2000)
	rc, err := after.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatalf("after the reload, a blob only the new remote has: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != string(data) {
		t.Fatalf("read %d bytes, want the blob", len(got))
	}
	if urls := remoteURLs(set); len(urls) != 1 || urls[0] != second.url {
		t.Errorf("status after the reload lists %v, want only %s", urls, second.url)
	}
	_, old := putBlob(t, first.mem, 1000)
	rc, err = before.Get(context.Background(), old, 0)
	if err != nil {
		t.Fatalf("a handle taken before the reload reads from the old remote: %v", err)
	}
	rc.Close()
}

func TestReloadRefusesBrokenConfig(t *testing.T) {
	t.Log("a configuration that cannot be built is refused and the old one keeps serving")
	dir := t.TempDir()
	up := newUpstream(t)
	set, _ := newSet(t, dir, fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: storage, push: false}\n", up.url))
	pem := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(pem, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken, err := policy.ParseUser(filepath.Join(dir, "castd.yaml"),
		[]byte("artifacts:\n  servers:\n  - {url: grpcs://127.0.0.1:1, type: storage, push: false, auth: {server-cert: "+pem+"}}\n"))
	if err != nil {
		t.Fatal(err) // policy checks that the file is readable; Dial finds it is no certificate
	}
	if err = set.Reload(context.Background(), broken); err == nil {
		t.Fatal("Reload with an unreadable certificate succeeded")
	}
	if urls := remoteURLs(set); len(urls) != 1 || urls[0] != up.url {
		t.Errorf("status after a refused reload lists %v, want only %s", urls, up.url)
	}
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, d := putBlob(t, up.mem, 1000)
	if missing, err := cas.FindMissing(context.Background(), nil); err != nil || len(missing) != 0 {
		t.Fatalf("FindMissing = %v, %v", missing, err)
	}
	rc, err := cas.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatalf("after a refused reload, a blob the old remote has: %v", err)
	}
	rc.Close()
}

func TestReloadStatusFollowsNewRoles(t *testing.T) {
	t.Log("a remote both configurations use shows the new configuration's push decision and roles in status, not the union of both")
	dir := t.TempDir()
	up := newUpstream(t)
	set, _ := newSet(t, dir, fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: all, push: true}\n", up.url))
	if st := set.Remotes(); len(st) != 1 || !st[0].Push {
		t.Fatalf("status before the reload = %+v, want one push remote", st)
	}
	if err := set.Reload(context.Background(), parseUser(t, dir, fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: storage, push: false}\n", up.url))); err != nil {
		t.Fatal(err)
	}
	st := set.Remotes()
	if len(st) != 1 || st[0].Push || len(st[0].Roles) != 1 || st[0].Roles[0] != "storage" {
		t.Errorf("status after the reload = %+v, want one pull-only storage remote", st)
	}
}

func TestReloadForgetsSeriesOfDroppedRemotes(t *testing.T) {
	t.Log("after a reload, /metrics shows no per-instance series of a remote the instance no longer reads from")
	dir := t.TempDir()
	first, second := newUpstream(t), newUpstream(t)
	conf := func(u *upstreamServer) string {
		return fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: storage, push: false}\n", u.url)
	}
	reg := prometheus.NewRegistry()
	set, _ := newSetWith(t, dir, conf(first), proxy.Options{Registerer: reg})
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, d := putBlob(t, first.mem, 1000)
	rc, err := cas.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatalf("a blob the first remote has: %v", err)
	}
	rc.Close()
	firstName := strings.TrimPrefix(first.url, "grpc://")
	if n := seriesWithTier(t, reg, firstName); n == 0 {
		t.Fatalf("no series name the first remote after a hit from it; the test would prove nothing")
	}
	if err := set.Reload(context.Background(), parseUser(t, dir, conf(second))); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if n := seriesWithTier(t, reg, firstName); n != 0 {
		t.Errorf("%d series still name the dropped remote %s", n, firstName)
	}
}

// seriesWithTier counts the series in reg with a tier or remote label of
// name.
func seriesWithTier(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "castd_fanout") && !strings.HasPrefix(mf.GetName(), "castd_cache") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "tier" || l.GetName() == "remote") && l.GetValue() == name {
					n++
				}
			}
		}
	}
	return n
}
