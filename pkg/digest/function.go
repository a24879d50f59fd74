package digest

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/zeebo/blake3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Function is a digest function castd verifies blobs with. The zero value
// is SHA256, REAPI's default, so a Digest built without naming a function
// is a SHA-256 digest, as every digest was before castd knew others.
type Function uint8

// The functions castd verifies. MD5 and SHA-1 are here because REAPI
// lists them and old clients use them, not because they resist collisions:
// a blob is still verified against the function its client chose.
const (
	SHA256 Function = iota
	SHA1
	MD5
	SHA384
	SHA512
	BLAKE3
	numFunctions
)

// Functions lists every function castd can verify, SHA256 first.
var Functions = []Function{SHA256, SHA1, MD5, SHA384, SHA512, BLAKE3}

var functionInfo = [numFunctions]struct {
	name  string // lower case, as in resource names and config
	proto repb.DigestFunction_Value
	bytes int // raw hash length
	new   func() hash.Hash
}{
	SHA256: {"sha256", repb.DigestFunction_SHA256, sha256.Size, sha256.New},
	SHA1:   {"sha1", repb.DigestFunction_SHA1, sha1.Size, sha1.New},
	MD5:    {"md5", repb.DigestFunction_MD5, md5.Size, md5.New},
	SHA384: {"sha384", repb.DigestFunction_SHA384, sha512.Size384, sha512.New384},
	SHA512: {"sha512", repb.DigestFunction_SHA512, sha512.Size, sha512.New},
	BLAKE3: {"blake3", repb.DigestFunction_BLAKE3, 32, func() hash.Hash { return blake3.New() }},
}

// String is the function's lower-case name ("sha256", "blake3"): the form
// ByteStream resource names and castd's config use.
func (f Function) String() string {
	if f >= numFunctions {
		return "unknown"
	}
	return functionInfo[f].name
}

// MarshalText writes f's name, so config dumps read "blake3", not 5.
func (f Function) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads a name ParseFunction accepts.
func (f *Function) UnmarshalText(b []byte) error {
	v, ok := ParseFunction(string(b))
	if !ok {
		return fmt.Errorf("unknown digest function %q", b)
	}
	*f = v
	return nil
}

// Proto is the REAPI enum value for f.
func (f Function) Proto() repb.DigestFunction_Value { return functionInfo[f].proto }

// HashLength is the length of f's hex-encoded hash.
func (f Function) HashLength() int { return functionInfo[f].bytes * 2 }

// HashBytes is the length of f's raw hash.
func (f Function) HashBytes() int { return functionInfo[f].bytes }

// NewHasher returns a new hash.Hash computing f, for streams. For bytes
// already in memory Sum is cheaper: a BLAKE3 hasher behind the hash.Hash
// interface is a heap allocation of a few KiB, which costs more than
// hashing a 1 KiB blob.
func (f Function) NewHasher() hash.Hash { return functionInfo[f].new() }

// Sum returns f's raw hash of b, without a heap-allocated hasher.
func (f Function) Sum(b []byte) []byte {
	switch f {
	case SHA256:
		s := sha256.Sum256(b)
		return s[:]
	case SHA1:
		s := sha1.Sum(b)
		return s[:]
	case MD5:
		s := md5.Sum(b)
		return s[:]
	case SHA384:
		s := sha512.Sum384(b)
		return s[:]
	case SHA512:
		s := sha512.Sum512(b)
		return s[:]
	case BLAKE3:
		s := blake3.Sum256(b)
		return s[:]
	}
	panic(fmt.Sprintf("digest: Sum with unknown function %d", f))
}

// Inferable reports whether REAPI lets a client leave f unnamed, the
// server inferring it from the hash length: true for every function
// castd knows except BLAKE3, whose hashes are as long as SHA-256's.
func (f Function) Inferable() bool { return f != BLAKE3 }

// FunctionFromProto maps a REAPI enum value to a Function. ok is false for
// UNKNOWN and for functions castd cannot verify (VSO, MURMUR3, …).
func FunctionFromProto(v repb.DigestFunction_Value) (f Function, ok bool) {
	for _, f := range Functions {
		if functionInfo[f].proto == v {
			return f, true
		}
	}
	return 0, false
}

// ParseFunction maps a lower-case name ("sha256", "blake3") to a Function.
// REAPI's upper-case enum names are accepted too, for config files.
func ParseFunction(name string) (Function, bool) {
	n := strings.ToLower(name)
	for _, f := range Functions {
		if functionInfo[f].name == n {
			return f, true
		}
	}
	return 0, false
}

// InferFunction returns the inferable function whose hashes have hexLen
// characters, as REAPI asks a server to do when a request names none.
func InferFunction(hexLen int) (Function, bool) {
	for _, f := range Functions {
		if f.Inferable() && f.HashLength() == hexLen {
			return f, true
		}
	}
	return 0, false
}

// FunctionSet is a set of functions, e.g. those a remote advertises. The
// zero value is empty.
type FunctionSet uint16

// SetOf returns the set holding fs.
func SetOf(fs ...Function) FunctionSet {
	var s FunctionSet
	for _, f := range fs {
		s |= 1 << f
	}
	return s
}

// AllFunctions is the set of every function castd verifies.
var AllFunctions = SetOf(Functions...)

// Has reports whether f is in s.
func (s FunctionSet) Has(f Function) bool { return f < numFunctions && s&(1<<f) != 0 }

// Slice lists s in Functions order.
func (s FunctionSet) Slice() []Function {
	var out []Function
	for _, f := range Functions {
		if s.Has(f) {
			out = append(out, f)
		}
	}
	return out
}

// Protos lists s as REAPI enum values, for Capabilities.
func (s FunctionSet) Protos() []repb.DigestFunction_Value {
	var out []repb.DigestFunction_Value
	for _, f := range s.Slice() {
		out = append(out, f.Proto())
	}
	return out
}

// SetFromProtos returns the functions among vs that castd can verify;
// values it cannot (VSO, MURMUR3, UNKNOWN) are left out.
func SetFromProtos(vs []repb.DigestFunction_Value) FunctionSet {
	var s FunctionSet
	for _, v := range vs {
		if f, ok := FunctionFromProto(v); ok {
			s |= SetOf(f)
		}
	}
	return s
}

// String lists s's names joined by commas.
func (s FunctionSet) String() string {
	names := make([]string, 0, numFunctions)
	for _, f := range s.Slice() {
		names = append(names, f.String())
	}
	return strings.Join(names, ",")
}

// Resolve picks the function of a request: the one its digest_function
// field names or, when the field is unset, the one inferred from the
// length of a hash it carries (sample; "" means SHA256). The function
// must be in allowed. The error is INVALID_ARGUMENT naming the field.
func Resolve(field repb.DigestFunction_Value, sample string, allowed FunctionSet) (Function, error) {
	f := SHA256
	if field != repb.DigestFunction_UNKNOWN {
		var ok bool
		if f, ok = FunctionFromProto(field); !ok {
			return 0, status.Errorf(codes.InvalidArgument, "digest_function: %s is not supported; supported: %s", field, allowed)
		}
	} else if sample != "" {
		var ok bool
		if f, ok = InferFunction(len(sample)); !ok {
			// Leave it to digest validation to name the bad hash.
			f = SHA256
		}
	}
	if !allowed.Has(f) {
		return 0, status.Errorf(codes.InvalidArgument, "digest_function: %s is not supported here; supported: %s", f, allowed)
	}
	return f, nil
}
