package digest_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

var hello = digest.OfBytes([]byte("hello"))

func TestNew(t *testing.T) {
	cases := []struct {
		name string
		hash string
		size int64
		ok   bool
	}{
		// The digest of real bytes is valid.
		{"valid", hello.Hash, 5, true},
		// SHA-256 hashes are 64 hex characters; anything else is another function or garbage.
		{"short hash", hello.Hash[:63], 5, false},
		// Upper-case hex would make two names for one blob.
		{"upper case", strings.ToUpper(hello.Hash), 5, false},
		{"non-hex", "g" + hello.Hash[1:], 5, false},
		{"negative size", hello.Hash, -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := digest.New(tc.hash, tc.size)
			if tc.ok != (err == nil) {
				t.Fatalf("New(%q, %d) err=%v, want ok=%v", tc.hash, tc.size, err, tc.ok)
			}
			if err != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v, want INVALID_ARGUMENT", status.Code(err))
			}
		})
	}
	if _, err := digest.FromProto(nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("FromProto(nil) = %v, want INVALID_ARGUMENT", err)
	}
}

func TestParseResource(t *testing.T) {
	d := hello.String()
	cases := []struct {
		name     string
		res      string
		write    bool
		instance string
		upload   string
		comp     string
		ok       bool
	}{
		// The bare form has no instance name.
		{"read no instance", "blobs/" + d, false, "", "", "", true},
		// Instance names may contain slashes.
		{"read nested instance", "a/b/blobs/" + d, false, "a/b", "", "", true},
		{"read compressed", "main/compressed-blobs/zstd/" + d, false, "main", "", "zstd", true},
		{"write", "main/uploads/u-1/blobs/" + d, true, "main", "u-1", "", true},
		// Clients may append metadata after the size on writes.
		{"write with metadata", "uploads/u-1/blobs/" + d + "/extra", true, "", "u-1", "", true},
		{"write without uploads", "main/blobs/" + d, true, "", "", "", false},
		{"read with trailing part", "blobs/" + d + "/x", false, "", "", "", false},
		{"dotdot segment", "../blobs/" + d, false, "", "", "", false},
		{"empty segment", "a//blobs/" + d, false, "", "", "", false},
		{"missing size", "blobs/" + hello.Hash, false, "", "", "", false},
		{"non-numeric size", "blobs/" + hello.Hash + "/five", false, "", "", "", false},
		{"negative size", "blobs/" + hello.Hash + "/-5", false, "", "", "", false},
		// strconv accepts a sign and leading zeros; a resource name must not.
		{"size with plus sign", "blobs/" + hello.Hash + "/+5", false, "", "", "", false},
		{"write size with plus sign", "uploads/u-1/blobs/" + hello.Hash + "/+5", true, "", "", "", false},
		{"size with leading zero", "blobs/" + hello.Hash + "/05", false, "", "", "", false},
		{"size minus zero", "blobs/" + hello.Hash + "/-0", false, "", "", "", false},
		{"bad hash", "blobs/abc/5", false, "", "", "", false},
		{"no blobs keyword", "main/things/" + d, false, "", "", "", false},
		{"empty", "", false, "", "", "", false},
		// "uploads" is reserved and may not appear inside an instance name.
		{"reserved instance segment", "uploads/blobs/" + d, false, "", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parse := digest.ParseReadResource
			if tc.write {
				parse = digest.ParseWriteResource
			}
			r, err := parse(tc.res)
			if !tc.ok {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("parse(%q) = %+v, %v; want INVALID_ARGUMENT", tc.res, r, err)
				}
				if !strings.Contains(err.Error(), "resource_name") {
					t.Fatalf("error %q does not name the field", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): %v", tc.res, err)
			}
			if r.Instance != tc.instance || r.UploadID != tc.upload || r.Compressor != tc.comp || r.Digest != hello {
				t.Fatalf("parse(%q) = %+v", tc.res, r)
			}
		})
	}
}

func TestResourceNamesRoundTrip(t *testing.T) {
	for _, inst := range []string{"", "main", "a/b"} {
		r, err := digest.ParseReadResource(digest.ReadResourceName(inst, hello))
		if err != nil || r.Instance != inst || r.Digest != hello {
			t.Fatalf("read %q: %+v %v", inst, r, err)
		}
		w, err := digest.ParseWriteResource(digest.WriteResourceName(inst, "id", hello))
		if err != nil || w.Instance != inst || w.UploadID != "id" || w.Digest != hello {
			t.Fatalf("write %q: %+v %v", inst, w, err)
		}
	}
}

func TestSet(t *testing.T) {
	a, b, c := digest.OfBytes([]byte("a")), digest.OfBytes([]byte("b")), digest.OfBytes([]byte("c"))
	s := digest.NewSet(a, b, a)
	if len(s) != 2 {
		t.Fatalf("NewSet folds duplicates: got %d members", len(s))
	}
	diff := s.Difference(digest.NewSet(b, c))
	if len(diff) != 1 || !diff.Has(a) {
		t.Fatalf("Difference = %v", diff.Sorted())
	}
	if !digest.Empty.IsEmpty() || digest.Empty.Size != 0 {
		t.Fatalf("Empty = %v", digest.Empty)
	}
}

func TestCompressedResourceNamesParse(t *testing.T) {
	// Why: the names castd builds for a remote must be what a server
	// (castd's own parser) reads back, instance and compressor included.
	d := digest.OfBytes([]byte("x"))
	for _, inst := range []string{"", "a/b"} {
		r, err := digest.ParseReadResource(digest.CompressedReadResourceName(inst, "zstd", d))
		if err != nil || r.Instance != inst || r.Compressor != "zstd" || r.Digest != d {
			t.Fatalf("read %q: %+v %v", inst, r, err)
		}
		w, err := digest.ParseWriteResource(digest.CompressedWriteResourceName(inst, "u1", "zstd", d))
		if err != nil || w.Instance != inst || w.Compressor != "zstd" || w.Digest != d || w.UploadID != "u1" {
			t.Fatalf("write %q: %+v %v", inst, w, err)
		}
	}
}
