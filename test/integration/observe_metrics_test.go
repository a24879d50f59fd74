package integration_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
)

func TestObserveCacheHitsInMetricsAndStatus(t *testing.T) {
	t.Log("after a remote hit, a local hit and a miss, /metrics and bst status --json answer \"is the cache helping?\"")
	la := newLayout(t)
	a := startCastd(t, la, fmtListen(la, "grpc://127.0.0.1:0"))
	lb := newLayout(t)
	b := startCastd(t, lb, lb.configYAML("artifacts:\n  servers:\n  - url: grpc://"+a.listenAddr("grpc")+"\n    type: all\n"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	onA := randomBlob(5000)
	if err := batchUpdate(ctx, dialUnix(t, a.socket), onA); err != nil {
		t.Fatal(err)
	}
	conn := dialUnix(t, b.socket)
	cas := repb.NewContentAddressableStorageClient(conn)
	nowhere := randomBlob(10)
	for _, d := range []*repb.Digest{onA.d, onA.d, nowhere.d} { // remote hit, local hit, miss
		resp, err := cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{d}, DigestFunction: repb.DigestFunction_SHA256})
		if err != nil {
			t.Fatal(err)
		}
		want := codes.OK
		if d == nowhere.d {
			want = codes.NotFound
		}
		if got := codes.Code(resp.GetResponses()[0].GetStatus().GetCode()); got != want {
			t.Fatalf("BatchReadBlobs(%s) = %v, want %v", d.GetHash(), got, want)
		}
	}
	ac := repb.NewActionCacheClient(conn)
	cached, unknown := randomBlob(20), randomBlob(21)
	if _, err := ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: cached.d, ActionResult: &repb.ActionResult{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: cached.d}); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: unknown.d}); !isNotFound(err) {
		t.Fatalf("GetActionResult(unknown) = %v, want NOT_FOUND", err)
	}

	var st struct {
		ConfigFile  string `json:"config_file"`
		MetricsURL  string `json:"metrics_url"`
		ActionCache struct {
			Hits, Misses int64
			HitRatio     *float64 `json:"hit_ratio"`
		} `json:"action_cache"`
		Instances []struct {
			Name    string
			Remotes []string
		}
		Remotes []struct{ Name, URL string }
	}
	r := mustBst(t, b.socket, "", "status", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("bst status --json: %v\n%s", err, r.stdout)
	}
	if st.ConfigFile != lb.config || st.MetricsURL != b.metricsURL() {
		t.Errorf("config_file %q, metrics_url %q; want %q, %q", st.ConfigFile, st.MetricsURL, lb.config, b.metricsURL())
	}
	if st.ActionCache.Hits != 1 || st.ActionCache.Misses != 1 || st.ActionCache.HitRatio == nil || *st.ActionCache.HitRatio != 0.5 {
		t.Errorf("action_cache = %+v, want 1 hit, 1 miss, ratio 0.5", st.ActionCache)
	}
	if len(st.Remotes) != 1 || st.Remotes[0].Name == "" {
		t.Fatalf("remotes = %+v, want castd A, named", st.Remotes)
	}
	remote := st.Remotes[0].Name
	if len(st.Instances) != 1 || st.Instances[0].Name != "" || len(st.Instances[0].Remotes) != 1 || st.Instances[0].Remotes[0] != remote {
		t.Errorf("instances = %+v, want instance \"\" reading from %s", st.Instances, remote)
	}

	body := scrape(t, b.metricsURL())
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`castd_cache_requests_total{instance="",kind="cas",tier="` + remote + `"}`, 1},
		{`castd_cache_requests_total{instance="",kind="cas",tier="local"}`, 1},
		{`castd_cache_requests_total{instance="",kind="cas",tier="miss"}`, 1},
		{`castd_cache_requests_total{instance="",kind="action_cache",tier="local"}`, 1},
		{`castd_cache_requests_total{instance="",kind="action_cache",tier="miss"}`, 1},
		{`castd_cache_served_bytes_total{instance="",tier="` + remote + `"}`, 5000},
		{`castd_cache_served_bytes_total{instance="",tier="local"}`, 5000},
	} {
		if got := sample(t, body, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
}

// sample is the value of the exact series (name{labels}) in a text
// exposition, 0 when absent.
func sample(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s value %q: %v", series, m[1], err)
	}
	return v
}

func TestObserveExecuteLookupCountedApart(t *testing.T) {
	t.Log("Execute's cache lookup is its own kind: a miss before the first run, a local hit for the rerun, no GetActionResult counted")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	dir := t.TempDir()
	for i, want := range []string{"local execution", "local cache hit"} {
		r := bst(t, p.socket, dir, "run", "--output", "out.txt", "--", "sh", "-c", "echo hi > out.txt")
		requireServed(t, r, "Execution")
		if r.code != 0 || !strings.Contains(r.stderr, want) {
			t.Fatalf("run %d: exit %d, stderr %q; want %q", i+1, r.code, r.stderr, want)
		}
	}
	body := scrape(t, p.metricsURL())
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`castd_cache_requests_total{instance="",kind="execute_lookup",tier="miss"}`, 1},
		{`castd_cache_requests_total{instance="",kind="execute_lookup",tier="local"}`, 1},
		{`castd_cache_requests_total{instance="",kind="action_cache",tier="miss"}`, 0},
		{`castd_cache_requests_total{instance="",kind="action_cache",tier="local"}`, 0},
	} {
		if got := sample(t, body, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
}
