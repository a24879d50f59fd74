// Package fanout serves reads from the local store first and, on a miss,
// from an ordered list of upstream remotes (the pull order of DESIGN.md
// §3.3 rule 2), copying what a remote serves into the local store.
//
// NewCAS and NewActionCache return the same store.CAS and store.ActionCache
// interfaces as the tiers they combine, so the gRPC handlers never know
// whether they talk to the local store or to the fan-out. Writes go to the
// local store only; the write-back queue sees them by wrapping the fan-out
// (writeback.NewQueueingCAS, writeback.NewQueueingActionCache).
//
// The per-remote decorators live in files of their own:
// NewExistenceCachingCAS (positive FindMissing answers, TTL, bounded) and
// NewConcurrencyLimitingCAS (a FIFO semaphore per remote).
package fanout
