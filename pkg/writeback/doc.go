// Package writeback is castd's durable push queue: after a write lands in
// the local store, the entries that copy it to the user's push-enabled
// remotes are recorded in the store's badger index (store.Records) before
// the write is acknowledged, and per-remote workers push them in the
// background, blobs before the action results that reference them.
//
// Guarantee: a write acknowledged to a client has its queue entries on disk
// (badger, as durable as the local store's own index), so kill -9 after the
// acknowledgement loses no push; a restart reloads the entries and pushes
// them. A crash between the local write and the enqueue (before the client
// saw success) can leave a blob stored locally but not queued; the client
// was not told it succeeded and will write it again.
//
// What is queued stays pushable: the local store holds every queued blob
// (and asset content root) against eviction, from before the write until
// the push is done, and the holds are taken again when Open reloads the
// entries; once held blobs fill the quota, writes fail FAILED_PRECONDITION
// naming the queue. (Action results and assets are never evicted.)
//
// The queue never pushes to a project-recommended remote (Enqueue refuses
// such a target), retries transient failures with exponential backoff per
// entry, parks a remote's role (CAS, action cache, asset) that refuses
// pushes for good (UNIMPLEMENTED, PERMISSION_DENIED, ...) until a restart,
// applies back-pressure when full (Enqueue waits, then fails
// RESOURCE_EXHAUSTED; nothing is ever dropped silently) and drains within
// a bounded time on Close, cancelling pushes in flight and leaving the
// rest persisted.
package writeback
