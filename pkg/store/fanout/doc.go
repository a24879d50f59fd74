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
// Walk is the one ordered-tier loop (tier order, store.WithFallback and the
// failover delay on all but the last tier, NOT_FOUND as the only miss, the
// found-nowhere error); the CAS fetch, the action cache and pkg/asset's
// index fan-out all walk their tiers with it.
//
// Each remote is wrapped in the contract's generic decorators from package
// store: store.NewExistenceCachingCAS (positive FindMissing answers, TTL,
// bounded) and store.NewConcurrencyLimitingCAS (a FIFO semaphore per
// remote).
package fanout
