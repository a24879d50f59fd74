package main

import (
	"os"
	"os/signal"
	"syscall"
)

// notifySignals returns a channel that receives SIGINT and SIGTERM, the
// signals that stop castd (a second one during the drain stops it at
// once), and one that receives SIGHUP, which reloads the configuration
// (`systemctl --user reload castd`). stop undoes the registration.
func notifySignals() (shutdown, hup <-chan os.Signal, stop func()) {
	sd := make(chan os.Signal, 2)
	signal.Notify(sd, syscall.SIGINT, syscall.SIGTERM)
	h := make(chan os.Signal, 1)
	signal.Notify(h, syscall.SIGHUP)
	return sd, h, func() {
		signal.Stop(sd)
		signal.Stop(h)
	}
}
