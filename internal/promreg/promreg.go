// Package promreg registers Prometheus collectors for components that may
// be built more than once over one registry (one per project, remote or
// server), so that they share one series instead of failing.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or returns the equal
// collector already registered there (same name, labels and help), whose
// counts the caller then adds to. A nil reg leaves c unregistered; it still
// counts. Any other registration error is a programming error and panics.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}
