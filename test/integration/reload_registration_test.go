package integration_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestRegistrationFollowsProjectConf(t *testing.T) {
	t.Log("after project.conf changes and castd restarts, `bst remotes --project DIR` gives the same instance with the new remotes, " +
		"and status lists only the new remote")
	l := newLayout(t)
	proj := filepath.Join(l.base, "proj")
	if err := os.MkdirAll(proj, 0o700); err != nil {
		t.Fatal(err)
	}
	writeConf := func(url string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(proj, "project.conf"), []byte("name: demo\nartifacts:\n- {url: "+url+", type: all}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	instanceOf := func(socket string) string {
		t.Helper()
		var rm struct {
			InstanceName string `json:"instance_name"`
		}
		decodeJSON(t, mustBst(t, socket, "", "remotes", "--project", proj, "--json").stdout, &rm)
		return rm.InstanceName
	}
	const oldURL, newURL = "grpc://127.0.0.1:1", "grpc://127.0.0.1:2"

	writeConf(oldURL)
	p, _, _ := startWorkstation(t, l, "")
	before := instanceOf(p.socket)
	p.signal(syscall.SIGTERM)
	p.wait(drainTimeout + 10*time.Second)

	writeConf(newURL)
	p, _, ctl := startWorkstation(t, l, "")
	urls := map[string]bool{}
	for _, r := range ctlStatus(t, ctl).GetRemotes() {
		urls[r.GetUrl()] = true
	}
	if !urls[newURL] || urls[oldURL] {
		t.Errorf("after the restart, before registering again, status lists %v; want %s from the edited project.conf, not %s", urls, newURL, oldURL)
	}
	if after := instanceOf(p.socket); after != before {
		t.Errorf("bst remotes --project gives instance %q after the change, was %q; want one instance per project directory", after, before)
	}
	urls = map[string]bool{}
	for _, r := range ctlStatus(t, ctl).GetRemotes() {
		urls[r.GetUrl()] = true
	}
	if len(urls) != 1 || !urls[newURL] {
		t.Errorf("after registering again status lists %v, want only %s", urls, newURL)
	}
}
