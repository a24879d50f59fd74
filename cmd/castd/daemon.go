package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/castd/castd/internal/loopguard"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

// drainTimeout bounds the whole shutdown after SIGINT/SIGTERM: in-flight
// calls, then the write-back queue, share it, and what is still running
// when it is over is cancelled (pending pushes stay on disk for the next
// start). It stays below the units' TimeoutStopSec so systemd never has to
// SIGKILL a draining castd. A second signal cuts it short.
const drainTimeout = 10 * time.Second

// closeMargin is kept back from drainTimeout for what follows the drain
// proper: pushes that ignore cancellation get writeback's closeGrace (1 s)
// and the store closes.
const closeMargin = 1500 * time.Millisecond

// castdDaemon is a started castd: storage, one gRPC server over every
// listener, and the metrics endpoint. Stop it with stop; servers stop before
// the storage they use.
type castdDaemon struct {
	log       *slog.Logger
	cfg       daemonConfig
	store     *disk.Store
	remotes   *proxy.Set
	exec      *execution.Server
	scrubber  *grpcservers.Scrubber
	server    *grpc.Server
	health    *health.Server // NOT_SERVING from the start of a drain
	listeners []boundListener
	metrics   *metricsServer // nil when disabled
	// metricsAt is metrics' URL for Control's Status, set once metrics
	// started (listeners serve before then).
	metricsAt atomic.Pointer[string]
	auth      *grpcservers.ListenAuth
	// guard marks calls to remotes with this daemon's id and refuses
	// requests that come back with it (a remote that loops to castd).
	guard *loopguard.Guard

	// level and load serve reload: the logger's level and how the
	// configuration is read again. load nil: SIGHUP only logs.
	level *slog.LevelVar
	load  func() (*policy.Config, error)
}

// startDaemon opens everything in dependency order: store, server,
// listeners, metrics. On error whatever was opened is closed again, in
// reverse order, and the error says which step failed.
func startDaemon(cfg daemonConfig, log *slog.Logger) (_ *castdDaemon, err error) {
	d := &castdDaemon{log: log, cfg: cfg, guard: loopguard.New()}
	defer func() {
		if err != nil {
			d.closeAll(context.Background())
		}
	}()
	reg := newRegistry()
	if d.store, err = openStore(cfg, log, reg); err != nil {
		return nil, err
	}
	pcfg := cfg.policy
	if pcfg == nil {
		pcfg = policy.Defaults()
	}
	if d.remotes, err = openRemotes(pcfg, d.store, reg, log, d.guard); err != nil {
		return nil, err
	}
	if d.auth, err = listenAuth(pcfg, log); err != nil {
		return nil, err
	}
	if d.exec, err = openExecution(pcfg, cfg.storeDir, d.store, d.remotes, reg, log); err != nil {
		return nil, err
	}
	d.health = health.NewServer()
	sopts := serverOptions(cfg)
	sopts.Health, sopts.Logger, sopts.Registerer = d.health, log, reg
	sopts.Execution, sopts.Logs, sopts.Spooler = d.exec, d.exec, d.store
	d.server = grpcservers.NewServer(d.remotes, sopts, d.grpcServerOptions()...)
	d.exec.RegisterOperations(d.server)
	d.scrubber = startScrubber(pcfg, d.store, d.remotes, reg, log)
	registerControl(d.server, pcfg, d.remotes, d.store, cfg.storeDir, d.listenerNames, d.metricsURL, d.scrubber)
	registerAssets(d.server, pcfg, d.remotes, log)
	if d.listeners, err = startListeners(cfg); err != nil {
		return nil, err
	}
	if d.metrics, err = openMetrics(cfg, reg, log); err != nil {
		return nil, err
	}
	if d.metrics != nil {
		d.metricsAt.Store(&d.metrics.url)
	}
	return d, nil
}

// grpcServerOptions are the gRPC server's transport credentials and
// interceptors beyond grpcservers' own: listen auth first, so that only an
// authorised caller learns of a loop, then the loop guard.
func (d *castdDaemon) grpcServerOptions() []grpc.ServerOption {
	opts := append([]grpc.ServerOption{grpc.Creds(mixedCreds{})}, d.auth.ServerOptions()...)
	return append(opts, d.guard.ServerOptions()...)
}

// openMetrics starts the metrics endpoint unless it is disabled. A busy
// built-in default port (a second castd for another user or store) only
// costs metrics, with a warning: `castd` without configuration must start.
// An address the user chose that cannot be bound is an error.
func openMetrics(cfg daemonConfig, reg *prometheus.Registry, log *slog.Logger) (*metricsServer, error) {
	if cfg.metricsAddr == "" {
		return nil, nil
	}
	m, err := startMetrics(cfg.metricsAddr, reg, log)
	if err != nil && !cfg.metricsExplicit && errors.Is(err, syscall.EADDRINUSE) {
		log.Warn("metrics disabled: the default address is in use; set `metrics` to another address", "err", err)
		return nil, nil
	}
	return m, err
}

func openStore(cfg daemonConfig, log *slog.Logger, reg prometheus.Registerer) (*disk.Store, error) {
	opts := cfg.storeOpts
	opts.Logger = log
	opts.Registerer = reg
	return disk.Open(cfg.storeDir, opts) // its errors name the directory
}

// metricsURL is where /metrics is served, "" when disabled (or not
// started yet). Safe for concurrent use.
func (d *castdDaemon) metricsURL() string {
	if u := d.metricsAt.Load(); u != nil {
		return *u
	}
	return ""
}

// readyLine is the one log line that says castd serves and where.
func (d *castdDaemon) readyLine() string {
	line := "castd listening on " + describeListeners(d.listeners) + ", store " + d.cfg.storeDir
	if d.metrics != nil {
		line += ", metrics " + d.metrics.url
	} else {
		line += ", metrics disabled"
	}
	return line
}

// run serves until a shutdown signal arrives on sigs or a listener fails,
// then stops everything within drainTimeout. Each signal on hups reloads
// the configuration. It returns the listener failure, if any.
func (d *castdDaemon) run(sigs, hups <-chan os.Signal) error {
	serveErr := make(chan error, len(d.listeners))
	for _, l := range d.listeners {
		go func() { serveErr <- d.server.Serve(socketBufferListener{l}) }()
	}
	d.log.Info(d.readyLine(), "castd_id", d.guard.ID())
	notifySystemd(d.log, daemon.SdNotifyReady)

	var err error
wait:
	for {
		select {
		case <-hups:
			d.reload()
		case s := <-sigs:
			d.log.Info("shutting down", "signal", s.String(), "drain", drainTimeout.String())
			break wait
		case err = <-serveErr:
			err = fmt.Errorf("serving: %w", err)
			d.log.Error("listener failed; shutting down", "err", err)
			break wait
		}
	}
	notifySystemd(d.log, daemon.SdNotifyStopping)
	ctx, cancel := shutdownContext(sigs, d.log)
	defer cancel()
	d.drain(ctx)
	return errors.Join(err, d.closeAll(ctx))
}

// shutdownContext is the budget of one shutdown: done drainTimeout minus
// closeMargin from now, or at once when a second signal arrives on sigs.
func shutdownContext(sigs <-chan os.Signal, log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout-closeMargin)
	go func() {
		select {
		case s := <-sigs:
			log.Warn("second signal; cancelling remaining calls and pushes", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// drain stops accepting and waits for in-flight calls until ctx is done,
// then cancels whatever is left. Health checks on connections that stay
// open answer NOT_SERVING meanwhile, so a client or load balancer that
// watches them sends no new work.
func (d *castdDaemon) drain(ctx context.Context) {
	d.health.Shutdown()
	done := make(chan struct{})
	go func() {
		d.server.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			d.log.Warn("drain time over; cancelling remaining calls", "drain", drainTimeout.String())
		}
	}
	d.server.Stop()
	<-done
}

// closeAll releases what start opened, servers before storage. The
// write-back queue drains until ctx is done (the rest of the shutdown
// budget). It is safe on a partly started daemon.
func (d *castdDaemon) closeAll(ctx context.Context) error {
	var errs []error
	if d.server != nil {
		d.server.Stop() // no-op after a completed GracefulStop
	}
	closeListeners(d.listeners) // those Serve never took over
	if d.metrics != nil {
		mctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		errs = append(errs, d.metrics.Close(mctx))
		cancel()
	}
	if d.exec != nil {
		d.exec.Close() // running actions stop before the storage they write
	}
	if d.scrubber != nil {
		d.scrubber.Stop() // refetches through the remotes, reads the store
	}
	if d.remotes != nil {
		d.remotes.Close(ctx) // after the server, before the store
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing store %s: %w", d.cfg.storeDir, err))
		}
	}
	return errors.Join(errs...)
}

// notifySystemd tells systemd (Type=notify units) about state; it does
// nothing when castd was not started by systemd.
func notifySystemd(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("sd_notify failed", "state", state, "err", err)
	}
}
