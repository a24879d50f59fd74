package digest

import (
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Resource is a parsed ByteStream resource name.
type Resource struct {
	Instance string // may be empty; may contain slashes
	UploadID string // set for write resources only
	Digest   Digest
	// Compressor is "" for identity, else the compressor named by a
	// compressed-blobs resource (e.g. "zstd").
	Compressor string
}

// ParseReadResource parses "{instance}/blobs/{digest_function/}{hash}/{size}"
// (instance and function optional) and
// "{instance}/compressed-blobs/{compressor}/{digest_function/}{hash}/{size}".
func ParseReadResource(name string) (Resource, error) {
	return parseResource(name, false)
}

// ParseWriteResource parses "{instance}/uploads/{uuid}/blobs/{hash}/{size}[/{metadata}]"
// and its compressed-blobs form.
func ParseWriteResource(name string) (Resource, error) {
	return parseResource(name, true)
}

func parseResource(name string, write bool) (Resource, error) {
	bad := func(why string) (Resource, error) {
		return Resource{}, status.Errorf(codes.InvalidArgument, "resource_name %q: %s", name, why)
	}
	if name == "" {
		return bad("is empty")
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return bad("contains an empty, '.' or '..' segment")
		}
	}
	// Find the first "blobs" or "compressed-blobs" segment (after "uploads/{uuid}" when writing).
	var r Resource
	i := 0
	for ; i < len(parts); i++ {
		if parts[i] == "blobs" || parts[i] == "compressed-blobs" {
			break
		}
	}
	if i == len(parts) {
		return bad("expected a blobs/{hash}/{size} part")
	}
	head := parts[:i]
	if write {
		if len(head) < 2 || head[len(head)-2] != "uploads" {
			return bad("expected {instance}/uploads/{uuid}/blobs/{hash}/{size}")
		}
		r.UploadID = head[len(head)-1]
		head = head[:len(head)-2]
	}
	for _, p := range head {
		if p == "uploads" || p == "blobs" || p == "compressed-blobs" || p == "actions" || p == "operations" {
			return bad("instance name may not contain the reserved segment " + strconv.Quote(p))
		}
	}
	r.Instance = strings.Join(head, "/")
	rest := parts[i+1:]
	if parts[i] == "compressed-blobs" {
		if len(rest) < 1 {
			return bad("expected compressed-blobs/{compressor}/{hash}/{size}")
		}
		r.Compressor = rest[0]
		rest = rest[1:]
	}
	// An optional {digest_function}/ segment comes before the hash; it is
	// never hex, so it cannot be mistaken for one. Without it, the function
	// is inferred from the hash length (REAPI 2.3).
	fn, named := SHA256, false
	if len(rest) > 0 {
		fn, named = ParseFunction(rest[0])
		if named {
			if rest[0] != fn.String() {
				return bad("digest function " + strconv.Quote(rest[0]) + " must be lower case")
			}
			rest = rest[1:]
		}
	}
	if len(rest) < 2 || (!write && len(rest) != 2) {
		return bad("expected blobs/{digest_function/}{hash}/{size}")
	}
	if !named {
		if f, ok := InferFunction(len(rest[0])); ok {
			fn = f
		}
	}
	size, ok := parseSize(rest[1])
	if !ok {
		return bad("size " + strconv.Quote(rest[1]) + " is not a decimal number in canonical form")
	}
	d, err := NewIn(fn, rest[0], size)
	if err != nil {
		return bad(status.Convert(err).Message())
	}
	r.Digest = d
	return r, nil
}

// parseSize parses a resource name's size segment. Only the canonical
// form is accepted (ASCII digits, no sign, no leading zero), so that one
// blob has one resource name: strconv alone would take "+29" and "029".
func parseSize(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && strconv.FormatInt(n, 10) == s
}

// ReadResourceName builds the read resource name for d under instance.
func ReadResourceName(instance string, d Digest) string {
	if instance == "" {
		return "blobs/" + d.String()
	}
	return instance + "/blobs/" + d.String()
}

// WriteResourceName builds an upload resource name for d under instance.
func WriteResourceName(instance, uploadID string, d Digest) string {
	p := "uploads/" + uploadID + "/blobs/" + d.String()
	if instance == "" {
		return p
	}
	return instance + "/" + p
}

// CompressedReadResourceName builds the read resource name of d's
// compressed form, "{instance}/compressed-blobs/{compressor}/{hash}/{size}".
func CompressedReadResourceName(instance, compressor string, d Digest) string {
	p := "compressed-blobs/" + compressor + "/" + d.String()
	if instance == "" {
		return p
	}
	return instance + "/" + p
}

// CompressedWriteResourceName builds an upload resource name of d's
// compressed form, "{instance}/uploads/{uuid}/compressed-blobs/{compressor}/{hash}/{size}".
func CompressedWriteResourceName(instance, uploadID, compressor string, d Digest) string {
	p := "uploads/" + uploadID + "/compressed-blobs/" + compressor + "/" + d.String()
	if instance == "" {
		return p
	}
	return instance + "/" + p
}
