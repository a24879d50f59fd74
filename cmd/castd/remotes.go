package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/internal/loopguard"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// openRemotes builds the per-instance fan-out over the configured remotes
// and starts the write-back queue. Every call to a remote carries guard's
// mark. A remote that is down does not stop castd; an unusable remote
// configuration does.
func openRemotes(cfg *policy.Config, local *disk.Store, reg prometheus.Registerer, log *slog.Logger, guard *loopguard.Guard) (*proxy.Set, error) {
	dial := []grpcclient.Option{grpcclient.WithDialOptions(guard.DialOptions()...)}
	set, err := proxy.New(context.Background(), cfg, local, proxy.Options{Registerer: reg, Logger: log, Dial: dial})
	if err != nil {
		return nil, fmt.Errorf("remotes: %w", err)
	}
	return set, nil
}

// listenAuth returns the guard whose interceptors require listen-auth's
// bearer token on TCP listeners and log request metadata when asked.
func listenAuth(cfg *policy.Config, log *slog.Logger) (*grpcservers.ListenAuth, error) {
	a, err := grpcservers.NewListenAuth(cfg.ListenAuth.AccessToken, cfg.LogRequestMetadata, log)
	if err != nil {
		return nil, fmt.Errorf("listen-auth: %w", err)
	}
	return a, nil
}

// registerControl adds castd.v1.Control to s.
func registerControl(s *grpc.Server, cfg *policy.Config, set *proxy.Set, local *disk.Store, storeDir string, listeners func() []string, metricsURL func() string, scrubber *grpcservers.Scrubber) {
	castdpb.RegisterControlServer(s, grpcservers.New(cfg, set, local, grpcservers.Info{
		Version:    version,
		StartTime:  time.Now(),
		Listeners:  listeners,
		StoreDir:   storeDir,
		MetricsURL: metricsURL,
		Scrubber:   scrubber,
	}))
}

// startScrubber returns the scrubber that Control/Scrub runs, already
// scrubbing every cache.scrub-interval in the background when that is set.
// Stop it before the remotes and the store close.
func startScrubber(cfg *policy.Config, local *disk.Store, set *proxy.Set, reg prometheus.Registerer, log *slog.Logger) *grpcservers.Scrubber {
	sc := grpcservers.NewScrubber(local, set, grpcservers.ScrubberOptions{Logger: log, Registerer: reg})
	if iv := cfg.Cache.ScrubInterval; iv > 0 {
		sc.Start(iv, defaults.ScrubRate)
		log.Info("background scrub enabled", "interval", iv.String(), "bytes_per_second", defaults.ScrubRate)
	}
	return sc
}

// registerAssets adds the Remote Asset Fetch and Push services to s,
// served per instance name by set, in the digest functions cfg allows.
func registerAssets(s *grpc.Server, cfg *policy.Config, set *proxy.Set, log *slog.Logger) {
	asset.NewServer(set.Assets, asset.Options{Logger: log, DigestFunctions: digestFunctions(cfg)}).Register(s)
}

// listenerNames returns the bound listeners' addresses ("unix:PATH",
// "grpc://HOST:PORT"), read when called (Status runs after start).
func (d *castdDaemon) listenerNames() []string {
	out := make([]string, len(d.listeners))
	for i, l := range d.listeners {
		out[i], _, _ = strings.Cut(l.desc, " (")
	}
	return out
}
