package asset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"

	"github.com/castd/castd/pkg/digest"
)

// Kind says what an asset's digest refers to: a single blob (FetchBlob,
// PushBlob) or the root Directory of a tree (FetchDirectory,
// PushDirectory). The two are separate namespaces: a URI pushed as a blob is
// not found by FetchDirectory.
type Kind uint8

// The kinds of asset.
const (
	Blob Kind = iota + 1
	Directory
)

// String returns "blob" or "directory".
func (k Kind) String() string {
	switch k {
	case Blob:
		return "blob"
	case Directory:
		return "directory"
	}
	return "unknown"
}

// Asset names content the way a client asks for it: any one of URIs, with
// exactly these qualifiers (order does not matter; names are unique), in
// the digest function Func (zero: SHA-256). The function is part of the
// name: a URI associated under BLAKE3 and under SHA-256 holds two separate
// associations, and a lookup finds only the one in its own function.
// Handlers build it from a validated request; indexes never mutate it.
type Asset struct {
	Kind       Kind
	URIs       []string
	Qualifiers []*assetpb.Qualifier
	Func       digest.Function
}

// String names the asset for errors and logs: kind and first URI, and the
// function when it is not SHA-256.
func (a Asset) String() string {
	s := a.Kind.String() + " asset without URI"
	if len(a.URIs) > 0 {
		s = fmt.Sprintf("%s asset %q", a.Kind, a.URIs[0])
	}
	if a.Func != digest.SHA256 {
		s += " (" + a.Func.String() + ")"
	}
	return s
}

// Ref is what an index knows about an asset: the content's digest, the URI
// that matched, when the association was made and when it stops being
// served (zero: never).
type Ref struct {
	Digest   digest.Digest
	URI      string
	Recorded time.Time
	ExpireAt time.Time
}

// Index maps assets to content references. Implementations are safe for
// concurrent use.
type Index interface {
	// Lookup returns the reference for the first of a.URIs (in order) that
	// is known with exactly a.Qualifiers in function a.Func, skipping
	// entries that expired or were recorded before oldest (zero: any age).
	// The reference's digest is in a.Func. A miss is NOT_FOUND.
	Lookup(ctx context.Context, a Asset, oldest time.Time) (Ref, error)
	// Record associates every URI of a (with a.Qualifiers) with ref.Digest
	// until ref.ExpireAt, replacing earlier associations in that digest's
	// function. The function is ref.Digest.Func's; a.Func is not
	// consulted (callers set it equal). ref.URI is ignored. The caller has
	// checked that the content is in the CAS.
	Record(ctx context.Context, a Asset, ref Ref) error
}

// entryKey is the index key of one (kind, function, uri, qualifier set): a
// SHA-256 of a length-prefixed encoding, so any URI length gives a
// fixed-size key and qualifier order does not matter. SHA-256 entries keep
// the encoding castd used before it knew other functions ("castd-asset-v1",
// kind, …), so an existing index opens unchanged; every other function
// leads with "castd-asset-v2", kind and the function, which no v1 encoding
// starts with.
func entryKey(kind Kind, fn digest.Function, uri string, qs []*assetpb.Qualifier) []byte {
	sorted := append([]*assetpb.Qualifier(nil), qs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].GetName() < sorted[j].GetName() })
	h := sha256.New()
	buf := append([]byte("castd-asset-v1"), byte(kind))
	if fn != digest.SHA256 {
		buf = append([]byte("castd-asset-v2"), byte(kind), byte(fn))
	}
	add := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	add(uri)
	for _, q := range sorted {
		add(q.GetName())
		add(q.GetValue())
	}
	h.Write(buf)
	return h.Sum(nil)
}
