// Package store is castd's storage contract: the CAS and ActionCache
// interfaces that every holder of blobs implements, helpers over them, and
// the generic decorators that wrap one and return the same interface, one
// per file (existence caching, concurrency limiting, completeness
// checking). A decorator that needs a remote client or the write-back
// queue lives with that (grpcclient's breaker, writeback's queueing).
//
// Implementations live in subpackages: disk (the local engine: badger
// index, pack files and blob files under a quota), grpcclient (one REAPI
// remote) and fanout (the ordered tiers of one instance). This package
// holds no engine and dials nothing.
//
// Everything that holds blobs implements CAS: the local store, one upstream
// remote, and the ordered fan-out over several of them. The fast paths
// (batch reads, writes of bytes in memory, hints) are methods of CAS, so a
// decorator cannot lose one. Decorators wrap a CAS or an ActionCache and
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

// BasicCAS is the part of CAS every holder of blobs starts from: find,
// read as a stream, write from a stream. It is not an interface callers
// hold (they hold CAS); it is what the generic fallbacks (GetEach,
// WithGenericFastPaths) need, so that a type with no fast path of its own
// gets them by calling its own methods.
type BasicCAS interface {
	// FindMissing returns the digests in ds that are not present, each once,
	// in no particular order. It never mutates ds. Implementations that
	// track recency treat a digest found present as used (so blobs a client
	// has just been told exist are the last to be evicted).
	FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error)

	// Get opens d for reading starting at offset (0 <= offset <= d.Size).
	// The reader yields exactly d.Size-offset bytes; a reader that finds the
	// bytes do not match d fails its Read with DATA_LOSS rather than serve
	// them. A missing blob is NOT_FOUND. The caller must Close the reader;
	// until then the blob is not evicted. Get is GetWith with no hint.
	Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error)

	// Put stores the bytes of r under d. The bytes must hash to d and be
	// exactly d.Size long, else the error is INVALID_ARGUMENT and nothing is
	// stored. A blob becomes visible only once it is complete; Put returns
	// only after that. Putting a blob that already exists succeeds and may
	// return without reading r to the end. Put is PutWith with no hint.
	Put(ctx context.Context, d digest.Digest, r io.Reader) error
}

// CAS is content-addressed blob storage: BasicCAS plus its fast paths.
// The fast paths are part of the contract, not optional interfaces, so a
// decorator that forgets one does not compile; an implementation with no
// fast path of its own calls the generic fallbacks of this package from
// its methods (GetEach, or all of them through WithGenericFastPaths). A
// decorator implements every method itself (it must not embed CAS, which
// would forward a fast path around its behaviour). Implementations are
// safe for concurrent use.
type CAS interface {
	BasicCAS

	// GetWith is Get with a hint about how the reader will be used. Same
	// contract as Get; a CAS is free to ignore the hint.
	GetWith(ctx context.Context, d digest.Digest, offset int64, hint GetHint) (io.ReadCloser, error)

	// PutWith is Put with a hint about the blob. Same contract and
	// verification as Put; a CAS is free to ignore the hint.
	PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint PutHint) error

	// GetMany reads many small blobs at once (BatchReadBlobs): one call
	// for the lot, so that a remote tier can answer with one round trip
	// per batch instead of one per blob. It returns one result per digest
	// of ds, in the order of ds (duplicates included). Each result holds
	// the blob's verified content or its own error: NOT_FOUND for a miss,
	// any other code for a failure (which may be the same error for every
	// entry when the whole call failed). It never mutates ds. Callers pass
	// only blobs of bounded total size, since every blob is held in
	// memory; one digest is the way to read one small blob whole (see
	// ReadBytes).
	GetMany(ctx context.Context, ds []digest.Digest) []BlobResult

	// PutBytes stores data, a blob already in memory (BatchUpdateBlobs),
	// under d: Put without the copy into a buffer of the store's. Same
	// contract and verification as Put (but see PutHint.Verified); data
	// must not change until PutBytes returns and is not retained after.
	PutBytes(ctx context.Context, d digest.Digest, data []byte, hint PutHint) error
}

// GetHint says how the reader of a GetWith will be used. The zero value
// is Get's: no hint.
type GetHint struct {
	// ConsumerVerifies says the reader goes straight into something that
	// hashes every byte against the digest itself (a local Put, which
	// stores nothing unverified): a CAS that hashes a stream only to check
	// it, as the upstream client does, may leave the check to that
	// consumer and save hashing the blob a second time.
	ConsumerVerifies bool
}

// PutHint says what the caller knows about a blob it stores. The zero
// value is Put's: no hint.
type PutHint struct {
	// Verified says the caller has already compared the bytes' hash
	// (under the digest's function) with the digest (the fan-out storing what an upstream client checked
	// as it arrived, a BlobResult with Verified): a store may check only
	// the size (the local store does for small blobs given to PutBytes).
	Verified bool
	// Uncached says the blob is not expected to be read again soon (the
	// fan-out storing a blob it streams from a remote to a client): a
	// store may write it around the page cache (the local store does for
	// large blobs, with O_DIRECT), which saves the kernel's copy and
	// leaves the cache to data that is read.
	Uncached bool
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

// BlobResult is one entry of a GetMany answer: Data when Err is nil.
// Verified says that whoever produced it compared Data's hash (under the
// digest's function) with the digest (the upstream client does; a local read checks a CRC instead, and
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
