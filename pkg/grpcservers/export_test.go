package grpcservers

import "github.com/castd/castd/internal/clock"

// SetClock replaces the clock the rejection log uses.
func SetClock(a *ListenAuth, c clock.Clock) { a.clock = c }
