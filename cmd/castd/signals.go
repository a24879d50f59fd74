package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// notifyShutdown returns a channel that receives SIGINT and SIGTERM, the
// signals that stop castd (a second one during the drain stops it at once).
// SIGHUP (kill -HUP; the units have no ExecReload) is logged and
// ignored until configuration reload exists, so that it cannot kill the
// daemon. stop undoes the registration.
func notifyShutdown(log *slog.Logger) (sigs <-chan os.Signal, stop func()) {
	shutdown := make(chan os.Signal, 2)
	signal.Notify(shutdown, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				log.Warn("SIGHUP received: castd does not reload its configuration; restart it to apply changes (systemctl --user restart castd)")
			case <-done:
				return
			}
		}
	}()
	return shutdown, func() {
		signal.Stop(shutdown)
		signal.Stop(hup)
		close(done)
	}
}
