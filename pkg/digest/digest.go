// Package digest holds the content address used everywhere in castd: a
// digest function, a hash and a size, validated once at the edge and then
// passed around as a comparable value (usable as a map key). Two digests of
// different functions never compare equal, so a BLAKE3 blob and a SHA-256
// blob never meet in a map, a store or a queue.
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

// Digest identifies a blob by its lower-case hex hash, its size in bytes
// and the function the hash was computed with (zero: SHA-256). The zero
// value is not a valid digest. Digest is a small value type, safe to copy
// and to use as a map key.
type Digest struct {
	Hash string
	Size int64
	// Func is omitted from JSON when it is SHA-256, so records written
	// before castd knew other functions read back unchanged and new
	// SHA-256 records look exactly like them.
	Func Function `json:",omitempty"`
}

// Empty is the SHA-256 digest of the empty blob. Stores treat the empty
// blob as always present, in every function (see IsEmpty).
var Empty = OfBytes(nil)

var empties = func() (e [numFunctions]Digest) {
	for _, f := range Functions {
		e[f] = OfBytesIn(f, nil)
	}
	return e
}()

// EmptyIn is the digest of the empty blob under f.
func EmptyIn(f Function) Digest { return empties[f] }

// New validates a SHA-256 hash and size and returns the digest. The error
// is a gRPC INVALID_ARGUMENT status naming what is wrong, fit to return to
// a client.
func New(hash string, size int64) (Digest, error) { return NewIn(SHA256, hash, size) }

// NewIn validates hash and size as a digest under f.
func NewIn(f Function, hash string, size int64) (Digest, error) {
	if f >= numFunctions {
		return Digest{}, status.Errorf(codes.InvalidArgument, "digest hash %q: unknown digest function %d", hash, f)
	}
	if len(hash) != f.HashLength() {
		return Digest{}, status.Errorf(codes.InvalidArgument, "digest hash %q: expected %d hex characters (%s), got %d", hash, f.HashLength(), f, len(hash))
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
	return Digest{Hash: hash, Size: size, Func: f}, nil
}

// FromProto validates a REAPI digest message as SHA-256. A nil message is
// invalid.
func FromProto(d *repb.Digest) (Digest, error) { return FromProtoIn(SHA256, d) }

// FromProtoIn validates a REAPI digest message under f, the function of
// the request that carries it.
func FromProtoIn(f Function, d *repb.Digest) (Digest, error) {
	if d == nil {
		return Digest{}, status.Error(codes.InvalidArgument, "digest is missing")
	}
	return NewIn(f, d.GetHash(), d.GetSizeBytes())
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

// String renders d as "hash/size", the form used in resource names and
// logs; a function a server cannot infer from the hash length (BLAKE3)
// leads, as in "blake3/hash/size", which is REAPI's resource-name form.
func (d Digest) String() string {
	s := d.Hash + "/" + strconv.FormatInt(d.Size, 10)
	if !d.Func.Inferable() {
		return d.Func.String() + "/" + s
	}
	return s
}

// IsEmpty reports whether d is the digest of the empty blob.
func (d Digest) IsEmpty() bool { return d.Size == 0 && d.Func < numFunctions && d == empties[d.Func] }

// NewHasher returns a hash.Hash computing d's function.
func (d Digest) NewHasher() hash.Hash { return d.Func.NewHasher() }

// OfBytes computes the SHA-256 digest of b.
func OfBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest{Hash: hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// OfBytesIn computes the digest of b under f.
func OfBytesIn(f Function, b []byte) Digest {
	if f == SHA256 {
		return OfBytes(b)
	}
	return Digest{Hash: hex.EncodeToString(f.Sum(b)), Size: int64(len(b)), Func: f}
}

// OfMessage computes the SHA-256 digest of the deterministic wire encoding
// of m and returns the encoding too, so the caller can store exactly those
// bytes.
func OfMessage(m proto.Message) (Digest, []byte, error) { return OfMessageIn(SHA256, m) }

// OfMessageIn is OfMessage under f.
func OfMessageIn(f Function, m proto.Message) (Digest, []byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return Digest{}, nil, fmt.Errorf("marshal %T: %w", m, err)
	}
	return OfBytesIn(f, b), b, nil
}

// NewHasher returns a SHA-256 hash.Hash; use Digest.NewHasher or
// Function.NewHasher where the function is known.
func NewHasher() hash.Hash { return sha256.New() }

// HashString returns the hex hash held by h.
func HashString(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
