// Package store is castd's storage contract: the CAS and ActionCache
// interfaces that every holder of blobs implements, helpers over them, and
// the decorators that wrap one and return the same interface.
//
// Implementations live in subpackages: disk (the local engine: badger
// index, pack files and blob files under a quota), grpcclient (one REAPI
// remote) and fanout (the ordered tiers of one instance). This package
// holds no engine and dials nothing.
//
// Everything that holds blobs implements CAS: the local store, one upstream
// remote, and the ordered fan-out over several of them. Decorators (existence
// caching, metrics, completeness checking) wrap a CAS or an ActionCache and
// return the same interface, so gRPC handlers and the execution path only
// ever hold these two interfaces.
//
// Errors are gRPC statuses. NOT_FOUND is the one and only "miss"; any other
// code is a failure of the layer that returned it.
package store

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
)

// CAS is content-addressed blob storage. Implementations are safe for
// concurrent use.
type CAS interface {
	// FindMissing returns the digests in ds that are not present, each once,
	// in no particular order. It never mutates ds. Implementations that
	// track recency treat a digest found present as used (so blobs a client
	// has just been told exist are the last to be evicted).
	FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error)

	// Get opens d for reading starting at offset (0 <= offset <= d.Size).
	// The reader yields exactly d.Size-offset bytes; a reader that finds the
	// bytes do not match d fails its Read with DATA_LOSS rather than serve
	// them. A missing blob is NOT_FOUND. The caller must Close the reader;
	// until then the blob is not evicted.
	Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error)

	// Put stores the bytes of r under d. The bytes must hash to d and be
	// exactly d.Size long, else the error is INVALID_ARGUMENT and nothing is
	// stored. A blob becomes visible only once it is complete; Put returns
	// only after that. Putting a blob that already exists succeeds and may
	// return without reading r to the end.
	Put(ctx context.Context, d digest.Digest, r io.Reader) error
}

// BytesGetter is an optional fast path a CAS may offer for blobs known to be
// small (BatchReadBlobs is bounded by max_batch_total_size_bytes): the whole
// blob in one exactly sized buffer, verified like Get, without a reader or a
// goroutine per blob. Callers check for it with a type assertion and fall
// back to Get; they must not use it for blobs of unbounded size, since the
// whole blob is held in memory. Implementations are safe for concurrent use.
type BytesGetter interface {
	// GetBytes returns the content of d, or NOT_FOUND. A blob whose stored
	// bytes do not match is never returned (see Get).
	GetBytes(ctx context.Context, d digest.Digest) ([]byte, error)
}

// BytesPutter is an optional fast path a CAS may offer for blobs already
// in memory (BatchUpdateBlobs): Put without the copy into a buffer of the
// store's. Same contract as Put; data must not change until PutBytes
// returns and is not retained after. Callers check for it with a type
// assertion and fall back to Put. Implementations are safe for concurrent
// use.
type BytesPutter interface {
	// PutBytes stores data under d, verified like Put.
	PutBytes(ctx context.Context, d digest.Digest, data []byte) error
}

// VerifiedBytesPutter is an optional fast path for bytes whose SHA-256 the
// caller has already compared with the digest: the fan-out storing what an
// upstream client checked as it arrived (a BlobResult with Verified). The
// store checks the size but does not hash again. Use PutVerifiedBytes.
type VerifiedBytesPutter interface {
	PutVerifiedBytes(ctx context.Context, d digest.Digest, data []byte) error
}

// Holder is an optional capability of a CAS with a quota (the local
// store): blobs held are never evicted, and when they alone fill the quota
// new writes fail with FAILED_PRECONDITION instead of evicting them. The
// write-back queue holds what it has yet to push. Holds count (n Holds need
// n Releases), may be taken before the blob is stored, and do not survive
// a restart. Implementations are safe for concurrent use.
type Holder interface {
	Hold(d digest.Digest)
	Release(d digest.Digest)
	// HeldBytes is the size of the distinct blobs held.
	HeldBytes() int64
}

// UncachedPutter is an optional variant of Put for a blob that is not
// expected to be read again soon: the fan-out storing a blob it streams
// from a remote to a client. A store may write such a blob around the page
// cache (the local store does for large blobs, with O_DIRECT), which saves
// the kernel's copy and leaves the cache to data that is read. Same
// contract and verification as Put. Use PutUncached.
type UncachedPutter interface {
	PutUncached(ctx context.Context, d digest.Digest, r io.Reader) error
}

// BatchGetter is an optional fast path a CAS may offer for reading many
// small blobs at once (BatchReadBlobs): one call for the lot, so that a
// remote tier can answer with one round trip per batch instead of one per
// blob. Same size rule as BytesGetter: callers pass only blobs of bounded
// total size, since every blob is held in memory. Callers check for it with
// a type assertion and fall back to GetBytes or Get. Implementations are
// safe for concurrent use.
type BatchGetter interface {
	// GetMany returns one result per digest of ds, in the order of ds
	// (duplicates included). Each result holds the blob's verified content
	// or its own error: NOT_FOUND for a miss, any other code for a failure
	// (which may be the same error for every entry when the whole call
	// failed). It never mutates ds.
	GetMany(ctx context.Context, ds []digest.Digest) []BlobResult
}

// BlobResult is one entry of a BatchGetter answer: Data when Err is nil.
// Verified says that whoever produced it compared Data's SHA-256 with the
// digest (the upstream client does; a local read checks a CRC instead, and
// a result built without knowing leaves it false).
type BlobResult struct {
	Data     []byte
	Err      error
	Verified bool
}

// ActionCache maps action digests to their results, for one instance name
// (project). Implementations are safe for concurrent use.
type ActionCache interface {
	// GetActionResult returns the result stored for action, or NOT_FOUND.
	GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error)

	// UpdateActionResult stores result for action, replacing any previous
	// entry (so a poisoned entry can be overwritten).
	UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error
}
