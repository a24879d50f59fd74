package grpcservers_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

// statusOf builds the remotes of config (read from dir/castd.yaml) and
// returns the Set and its Control server, metrics served at metricsURL.
func statusOf(t *testing.T, config, metricsURL string) (*proxy.Set, *grpcservers.Server, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "castd.yaml")
	cfg, err := policy.ParseUser(file, []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	local, err := disk.Open(filepath.Join(dir, "store"), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := proxy.New(context.Background(), cfg, local, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close(context.Background()); local.Close() })
	srv := grpcservers.New(cfg, set, local, grpcservers.Info{Version: "test", MetricsURL: func() string { return metricsURL }})
	return set, srv, file
}

func TestStatusReportsConfigMetricsAndInstances(t *testing.T) {
	t.Log("bst status needs the file castd loaded, the metrics URL and which instance reads from which remote")
	_, srv, file := statusOf(t, "artifacts:\n  servers:\n  - {url: grpc://127.0.0.1:1, push: true}\n"+
		"projects:\n  solo:\n    artifacts:\n      servers:\n      - {url: grpc://127.0.0.1:2}\n", "http://127.0.0.1:9464/metrics")
	st, err := srv.Status(context.Background(), &castdpb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetConfigFile() != file || st.GetMetricsUrl() != "http://127.0.0.1:9464/metrics" {
		t.Errorf("config_file %q, metrics_url %q; want %q and the metrics URL", st.GetConfigFile(), st.GetMetricsUrl(), file)
	}
	byName := map[string][]string{}
	for _, in := range st.GetInstances() {
		byName[in.GetName()] = in.GetRemotes()
	}
	names := map[string]string{} // url -> name
	for _, r := range st.GetRemotes() {
		names[r.GetUrl()] = r.GetName()
	}
	one, two := names["grpc://127.0.0.1:1"], names["grpc://127.0.0.1:2"]
	if one == "" || two == "" {
		t.Fatalf("remote names %v, want both remotes named", names)
	}
	if got := byName[""]; !slices.Equal(got, []string{one}) {
		t.Errorf("instance \"\" reads from %v, want [%s]", got, one)
	}
	if got := byName["solo"]; !slices.Contains(got, two) {
		t.Errorf("instance solo reads from %v, want %s among them", got, two)
	}
}

func TestStatusActionCacheHitRatio(t *testing.T) {
	t.Log("the action-cache hit ratio since start counts hits and misses of GetActionResult")
	set, srv, _ := statusOf(t, "", "")
	ctx := context.Background()
	ac, err := set.ActionCache(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	hit, missing := digest.OfBytes([]byte("cached action")), digest.OfBytes([]byte("new action"))
	if err := ac.UpdateActionResult(ctx, hit, &repb.ActionResult{ExitCode: 0}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{hit, hit, missing} {
		_, _ = ac.GetActionResult(ctx, d)
	}
	st, err := srv.Status(ctx, &castdpb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetActionCache(); got.GetHits() != 2 || got.GetMisses() != 1 {
		t.Errorf("action_cache = %v, want 2 hits and 1 miss", got)
	}
	if st.GetMetricsUrl() != "" {
		t.Errorf("metrics_url = %q with metrics disabled, want empty", st.GetMetricsUrl())
	}
}
