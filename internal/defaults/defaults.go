// Package defaults is the one place castd's tuning defaults are defined:
// those of the ordered fan-out (pkg/store/fanout, pkg/asset), the remote
// client (pkg/store/grpcclient), the push queue (pkg/writeback) and the
// served API (pkg/grpcservers). Each layer applies them to the zero fields
// of its options, and pkg/policy documents them for the configuration keys
// that set those fields (README's configuration reference lists both).
//
// One rule holds for every option struct and every configuration key: zero
// (or unset) means the default below. Where a feature can be switched off,
// the option takes a negative value for that, and the key says `off`:
// the existence cache (cache.existence-ttl) and the circuit breaker
// (cache.breaker-failures). The one exception is retry-limit, whose 0
// means "no retries" in BuildStream's schema castd follows: the client's
// Config.RetryLimit is negative for "unset" (RetryLimit below) and 0 for
// none.
//
// Daemon-level defaults that are values of the configuration itself (the
// socket, store directory, quota) are in pkg/policy's Defaults.
package defaults

import "time"

// The ordered read fan-out: cache.failover-delay, cache.stream-stall-delay,
// cache.max-concurrent-per-remote, cache.existence-ttl and
// cache.existence-max-entries.
const (
	// FailoverDelay is how long a remote with a later tier behind it may
	// take to answer a read (a stream: deliver its first bytes) before
	// it is cut off as stalled and the next tier asked.
	FailoverDelay = time.Second
	// StreamStallFactor times the failover delay is how long a stream
	// from a remote with a later tier behind it may go without bytes
	// once it delivered its first ones: a throttled link still delivers,
	// message after message, so a gap that long is a stall.
	StreamStallFactor = 5
	// MaxConcurrentPerRemote bounds the calls in flight per remote. It
	// is high because a cold read of many small blobs costs one remote
	// round trip per blob, and a client's BatchReadBlobs fans out to many
	// of them at once.
	MaxConcurrentPerRemote = 64
	// ExistenceTTL is how long a remote's "present" is believed.
	ExistenceTTL = 60 * time.Second
	// ExistenceMaxEntries bounds each remote's existence cache (about 150
	// bytes an entry).
	ExistenceMaxEntries = 1 << 20
)

// The remote client: connection-config (per remote) and
// cache.stream-idle-timeout, cache.breaker-failures and
// cache.breaker-cool-down.
const (
	// RetryLimit is how often a call failing with a transient code is
	// retried when retry-limit is unset.
	RetryLimit = 4
	// RetryDelay is the first retry's backoff; it doubles on every retry.
	RetryDelay = time.Second
	// RequestTimeout bounds each attempt of a unary call.
	RequestTimeout = 2 * time.Minute
	// StreamIdleTimeout cuts a stream that makes no progress for this long.
	StreamIdleTimeout = time.Minute
	// BreakerFailures consecutive failures open a remote's breaker.
	BreakerFailures = 5
	// BreakerCoolDown is how long an open breaker waits before a probe.
	BreakerCoolDown = 30 * time.Second
	// LogInterval is the shortest gap between two warnings of one kind
	// (remote, role, state) about a remote. Not configurable: it only
	// thins out logs.
	LogInterval = 10 * time.Second
)

// The push queue: cache.push-max-pending, cache.push-full-wait,
// cache.push-backoff-min, cache.push-backoff-max, cache.push-batch and
// cache.push-parallelism.
const (
	// PushMaxPending bounds the entries waiting to be pushed, over all
	// remotes; beyond it writes wait for room.
	PushMaxPending = 200_000
	// PushFullWait is how long a write waits for room in a full queue
	// before it fails.
	PushFullWait = 10 * time.Second
	// PushBackoffMin and PushBackoffMax bound the retry delay of an entry
	// whose push failed.
	PushBackoffMin = 500 * time.Millisecond
	PushBackoffMax = time.Minute
	// PushBatch is how many ready entries of one remote a worker takes at
	// once (one FindMissing call).
	PushBatch = 512
	// PushParallelism bounds the uploads in flight to one remote.
	PushParallelism = 8
)

// The served API: cache.upload-idle-timeout, cache.max-idle-upload-bytes,
// cache.read-buffer-limit.
const (
	// MaxBatchTotalSizeBytes is the batch limit castd advertises; Bazel's
	// default gRPC message limit is 4 MiB too. Not configurable: clients
	// size their batches by it.
	MaxBatchTotalSizeBytes = 4 << 20
	// UploadIdleTimeout drops a ByteStream upload without progress.
	UploadIdleTimeout = 60 * time.Second
	// MaxIdleUploads bounds the uploads kept for resumption at once.
	MaxIdleUploads = 256
	// MaxIdleUploadBytes bounds the bytes of the uploads kept for
	// resumption (their spool files count against the store's quota).
	MaxIdleUploadBytes = 4 << 30
	// ReadBufferLimit bounds the memory ByteStream reads hold for clients
	// that have not received it yet: 256 stalled-or-slow chunks, 128
	// clients that stopped reading a large blob.
	ReadBufferLimit = 256 << 20
	// ScrubRate is the background scrub's read rate in bytes a second: a
	// 20 GB store takes about ten minutes, and the disk stays free for
	// clients meanwhile.
	ScrubRate = 32 << 20
)
