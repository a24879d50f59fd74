package proxy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"
	"github.com/castd/castd/pkg/store/fanout"
	"github.com/castd/castd/pkg/writeback"
)

func TestTuningKeysReachOptions(t *testing.T) {
	t.Log("every cache.remotes and cache.push key reaches the option of the layer it tunes, off as a negative value")
	cfg, err := policy.ParseUser("castd.yaml", []byte(`
cache:
  remotes:
    failover-delay: 250ms
    stream-stall-delay: 2s
    stream-idle-timeout: 90s
    max-concurrent: 16
    existence-ttl: off
    existence-max-entries: 1000
    breaker-failures: 3
    breaker-cool-down: 10s
  push: {max-pending: 1000, full-wait: 3s, backoff-min: 100ms, backoff-max: 20s, batch: 64, parallelism: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, p := cfg.Cache.Remotes, cfg.Cache.Push
	if got, want := proxy.FanoutOptions(r), (fanout.Options{FailoverDelay: 250 * time.Millisecond, StreamStallDelay: 2 * time.Second}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fanout.Options %+v; want %+v", got, want)
	}
	if limit, ttl, entries := proxy.ReadTierOptions(r); limit != 16 || ttl >= 0 || entries != 1000 {
		t.Errorf("read tier: limit %d, existence TTL %v, %d entries; want 16, off (negative), 1000", limit, ttl, entries)
	}
	if got := proxy.ACOptions(r); got.FailoverDelay != 250*time.Millisecond {
		t.Errorf("fanout.ACOptions.FailoverDelay %v; want 250ms", got.FailoverDelay)
	}
	if got := proxy.AssetOptions(r); got.FailoverDelay != 250*time.Millisecond {
		t.Errorf("asset.FanoutOptions.FailoverDelay %v; want 250ms", got.FailoverDelay)
	}
	if got := proxy.UpstreamConfig(policy.Remote{}, "r", r); got.IdleTimeout != 90*time.Second {
		t.Errorf("grpcclient.Config.IdleTimeout %v; want 90s", got.IdleTimeout)
	}
	want := writeback.Options{MaxEntries: 1000, FullWait: 3 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: 20 * time.Second, Batch: 64, Parallelism: 2}
	if got := proxy.WritebackOptions(p); got != want {
		t.Errorf("writeback.Options %+v; want %+v", got, want)
	}
	if fmt.Sprint(asset.FanoutOptions{}) != fmt.Sprint(proxy.AssetOptions(policy.RemoteTuning{})) {
		t.Errorf("unset keys must leave the options zero (the layers' defaults)")
	}
}
