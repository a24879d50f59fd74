package main

import (
	"context"
	"slices"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/castd/castd/pkg/policy"
)

// reloadTimeout bounds building the new configuration's remotes (dialing
// is lazy, so this is reading credentials, not the network).
const reloadTimeout = 30 * time.Second

// reload reads the configuration again and applies what can change while
// serving: remotes, push rules and projects (remotes.Set.Reload),
// cache.quota, log-level, listen-auth's token, and the settings read per request
// (local-execution, cache.recache-project-content). Connections, calls in
// flight and the write-back queue are kept. A configuration with errors is
// refused with them logged (file:line) and the running one kept. Listeners,
// store-dir and the other start-up settings need a
// restart; a reload that changes them says so and keeps the old values.
func (d *castdDaemon) reload() {
	if d.load == nil {
		d.log.Warn("SIGHUP received, but this castd cannot reload its configuration; restart it to apply changes")
		return
	}
	notifySystemd(d.log, daemon.SdNotifyReloading)
	defer notifySystemd(d.log, daemon.SdNotifyReady)
	d.log.Info("SIGHUP received: reloading the configuration")
	cfg, err := d.load()
	if err != nil {
		d.log.Error("configuration reload refused; the running configuration stays in force", "err", err)
		return
	}
	dc, err := daemonConfigFrom(cfg)
	if err != nil {
		d.log.Error("configuration reload refused; the running configuration stays in force", "err", err)
		return
	}
	level, err := parseLevel(dc.logLevel)
	if err != nil {
		d.log.Error("configuration reload refused; the running configuration stays in force", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	if err := d.remotes.Reload(ctx, cfg); err != nil {
		d.log.Error("configuration reload refused: remotes; the running configuration stays in force", "err", err)
		return
	}
	if err := d.store.SetQuota(dc.storeOpts.QuotaBytes, dc.storeOpts.QuotaPercent); err != nil {
		d.log.Error("configuration reload: cache.quota not applied; the old one stays in force", "err", err)
	}
	if err := d.auth.SetTokenFile(cfg.ListenAuth.AccessToken); err != nil {
		d.log.Error("configuration reload: listen-auth token not read; the old one stays in force", "err", err)
	}
	d.warnNotReloaded(dc)
	d.log.Info("configuration reloaded", "file", cfg.File, "log_level", level.String())
	if d.level != nil { // last, so that the line above shows even when the new level hides info
		d.level.Set(level)
		d.log.Debug("configuration reload: debug logging on")
	}
}

// warnNotReloaded logs each start-up setting that differs in next: those
// keep their running values until a restart.
func (d *castdDaemon) warnNotReloaded(next daemonConfig) {
	cur := d.cfg
	changed := func(name string, differs bool) {
		if differs {
			d.log.Warn("configuration reload: "+name+" changed but only takes effect on a restart (systemctl --user restart castd)", "setting", name)
		}
	}
	changed("listen", !slices.Equal(cur.listen, next.listen))
	changed("store-dir", cur.storeDir != next.storeDir)
	changed("socket-mode", cur.socketMode != next.socketMode)
	changed("listen-tls", cur.tls != next.tls)
	changed("metrics", cur.metricsAddr != next.metricsAddr)
	changed("cache.reserved-disk-space", cur.storeOpts.ReservedBytes != next.storeOpts.ReservedBytes || cur.storeOpts.ReservedPercent != next.storeOpts.ReservedPercent)
	changed("cache.upload-idle-timeout", cur.uploadIdleTimeout != next.uploadIdleTimeout)
	changed("cache.read-buffer-limit", cur.readBufferLimit != next.readBufferLimit)
	changed("cache.max-idle-uploads or max-idle-upload-bytes", cur.maxIdleUploads != next.maxIdleUploads || cur.maxIdleUploadBytes != next.maxIdleUploadBytes)
	changed("cache.remotes", curPolicy(cur).Cache.Remotes != next.policy.Cache.Remotes)
	changed("cache.push", curPolicy(cur).Cache.Push != next.policy.Cache.Push)
	changed("cache.scrub-interval", curPolicy(cur).Cache.ScrubInterval != next.policy.Cache.ScrubInterval)
	changed("cache.sync-writes", cur.storeOpts.SyncWrites != next.storeOpts.SyncWrites)
	changed("log-request-metadata", curPolicy(cur).LogRequestMetadata != next.policy.LogRequestMetadata)
	cl, nl := curPolicy(cur).LocalExecution, next.policy.LocalExecution
	changed("local-execution.jobs, sandbox, workdir, default-timeout or output-paths-only",
		cl.Jobs != nl.Jobs || cl.Sandbox != nl.Sandbox || cl.Workdir != nl.Workdir || cl.DefaultTimeout != nl.DefaultTimeout ||
			cl.OutputPathsOnly != nl.OutputPathsOnly)
}

// curPolicy is the configuration castd started with (policy's defaults
// when it was started without one).
func curPolicy(c daemonConfig) *policy.Config {
	if c.policy == nil {
		return policy.Defaults()
	}
	return c.policy
}
