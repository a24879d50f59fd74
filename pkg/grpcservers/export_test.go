package grpcservers

import "time"

// SetClock replaces the clock the rejection log uses.
func SetClock(a *ListenAuth, now func() time.Time) { a.now = now }
