// Package digest holds the content address used everywhere in castd: a
// SHA-256 hash and a size, validated once at the edge and then passed around
// as a comparable value (usable as a map key).
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// HashLength is the length of a hex-encoded SHA-256 hash.
const HashLength = sha256.Size * 2

// Digest identifies a blob by its lower-case hex SHA-256 hash and its size in
// bytes. The zero value is not a valid digest. Digest is a small value type,
// safe to copy and to use as a map key.
type Digest struct {
	Hash string
	Size int64
}

// Empty is the digest of the empty blob. Stores treat it as always present.
var Empty = OfBytes(nil)

// New validates hash and size and returns the digest. The error is a gRPC
// INVALID_ARGUMENT status naming what is wrong, fit to return to a client.
func New(hash string, size int64) (Digest, error) {
	if len(hash) != HashLength {
		return Digest{}, status.Errorf(codes.InvalidArgument, "digest hash %q: expected %d hex characters (SHA-256), got %d", hash, HashLength, len(hash))
	}
	for i := 0; i < len(hash); i++ {
		c := hash[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return Digest{}, status.Errorf(codes.InvalidArgument, "digest hash %q: expected lower-case hex, found %q at %d", hash, c, i)
		}
	}
	if size < 0 {
		return Digest{}, status.Errorf(codes.InvalidArgument, "digest %s: size %d is negative", hash, size)
	}
	return Digest{Hash: hash, Size: size}, nil
}

// FromProto validates a REAPI digest message. A nil message is invalid.
func FromProto(d *repb.Digest) (Digest, error) {
	if d == nil {
		return Digest{}, status.Error(codes.InvalidArgument, "digest is missing")
	}
	return New(d.GetHash(), d.GetSizeBytes())
}

// MustParse is New for tests and constants; it panics on an invalid digest.
func MustParse(hash string, size int64) Digest {
	d, err := New(hash, size)
	if err != nil {
		panic(err)
	}
	return d
}

// Proto returns the REAPI message for d. It allocates; callers on hot paths
// may keep the result.
func (d Digest) Proto() *repb.Digest {
	return &repb.Digest{Hash: d.Hash, SizeBytes: d.Size}
}

// String renders d as "hash/size", the form used in resource names and logs.
func (d Digest) String() string {
	return d.Hash + "/" + strconv.FormatInt(d.Size, 10)
}

// IsEmpty reports whether d is the digest of the empty blob.
func (d Digest) IsEmpty() bool { return d == Empty }

// OfBytes computes the digest of b.
func OfBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest{Hash: hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// OfMessage computes the digest of the deterministic wire encoding of m and
// returns the encoding too, so the caller can store exactly those bytes.
func OfMessage(m proto.Message) (Digest, []byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return Digest{}, nil, fmt.Errorf("marshal %T: %w", m, err)
	}
	return OfBytes(b), b, nil
}

// NewHasher returns the hash function digests are computed with.
func NewHasher() hash.Hash { return sha256.New() }

// HashString returns the hex hash held by h.
func HashString(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
