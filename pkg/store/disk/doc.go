// Package disk is castd's local store engine: a badger index, small blobs
// in append-only pack files with compaction, large blobs as one file each,
// a quota with LRU eviction, holds for blobs the write-back queue has yet
// to push, per-MiB CRCs checked on every read and by the scrubber, a
// free-space guard, the upload spool, and a key-value area (Records) for
// the write-back queue and project registrations.
//
// *Store implements store.CAS and, per instance name, store.ActionCache.
// It knows nothing of remotes or gRPC services.
package disk
