package digest_test

import (
	"bytes"
	"encoding/json"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// Published test vectors for "abc" (FIPS 180, RFC 1321, the BLAKE3 spec).
var abc = map[digest.Function]string{
	digest.SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	digest.SHA1:   "a9993e364706816aba3e25717850c26c9cd0d89d",
	digest.MD5:    "900150983cd24fb0d6963f7d28e17f72",
	digest.SHA384: "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
	digest.SHA512: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
	digest.BLAKE3: "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
}

func TestFunctionsHashKnownVectors(t *testing.T) {
	for _, f := range digest.Functions {
		d := digest.OfBytesIn(f, []byte("abc"))
		if d.Hash != abc[f] || d.Size != 3 || d.Func != f {
			t.Errorf("%s(abc) = %+v, want hash %s", f, d, abc[f])
		}
		if _, err := digest.NewIn(f, abc[f], 3); err != nil {
			t.Errorf("NewIn(%s, its own hash): %v", f, err)
		}
		back, ok := digest.FunctionFromProto(f.Proto())
		if !ok || back != f {
			t.Errorf("FunctionFromProto(%s.Proto()) = %v, %v", f, back, ok)
		}
		if p, ok := digest.ParseFunction(f.String()); !ok || p != f {
			t.Errorf("ParseFunction(%q) = %v, %v", f.String(), p, ok)
		}
		if !digest.EmptyIn(f).IsEmpty() || digest.EmptyIn(f).Func != f {
			t.Errorf("EmptyIn(%s) = %+v is not empty", f, digest.EmptyIn(f))
		}
	}
}

func TestFunctionsNeverMeet(t *testing.T) {
	// SHA-256 and BLAKE3 hashes have one length: only Func tells them apart.
	s := digest.OfBytesIn(digest.SHA256, []byte("abc"))
	b, err := digest.NewIn(digest.BLAKE3, s.Hash, s.Size)
	if err != nil {
		t.Fatal(err)
	}
	if s == b || digest.NewSet(s).Has(b) {
		t.Fatalf("a SHA-256 digest and a BLAKE3 digest with one hash compare equal")
	}
	if s.String() == b.String() {
		t.Fatalf("String() is %q for both functions", s.String())
	}
	if got := b.String(); got != "blake3/"+s.Hash+"/3" {
		t.Fatalf("BLAKE3 String() = %q, want REAPI's blake3/{hash}/{size}", got)
	}
	// A hash of another function's length is not a SHA-256 hash.
	if _, err := digest.NewIn(digest.SHA256, abc[digest.SHA1], 3); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SHA-1 hash as SHA-256: %v, want INVALID_ARGUMENT", err)
	}
}

func TestResolve(t *testing.T) {
	all := digest.AllFunctions
	cases := []struct {
		name    string
		field   repb.DigestFunction_Value
		sample  string
		allowed digest.FunctionSet
		want    digest.Function
		ok      bool
	}{
		{"unset means SHA-256", repb.DigestFunction_UNKNOWN, "", all, digest.SHA256, true},
		{"named", repb.DigestFunction_BLAKE3, abc[digest.BLAKE3], all, digest.BLAKE3, true},
		{"inferred SHA-1 from length", repb.DigestFunction_UNKNOWN, abc[digest.SHA1], all, digest.SHA1, true},
		{"inferred SHA-512 from length", repb.DigestFunction_UNKNOWN, abc[digest.SHA512], all, digest.SHA512, true},
		{"64 characters infer SHA-256, never BLAKE3", repb.DigestFunction_UNKNOWN, abc[digest.BLAKE3], all, digest.SHA256, true},
		{"not verifiable", repb.DigestFunction_VSO, "", all, 0, false},
		{"not allowed here", repb.DigestFunction_BLAKE3, "", digest.SetOf(digest.SHA256), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := digest.Resolve(tc.field, tc.sample, tc.allowed)
			if tc.ok != (err == nil) || (tc.ok && got != tc.want) {
				t.Fatalf("Resolve = %v, %v; want %v ok=%v", got, err, tc.want, tc.ok)
			}
			if err != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v, want INVALID_ARGUMENT", status.Code(err))
			}
		})
	}
}

func TestParseResourceDigestFunction(t *testing.T) {
	b3 := digest.OfBytesIn(digest.BLAKE3, []byte("abc"))
	s1 := digest.OfBytesIn(digest.SHA1, []byte("abc"))
	cases := []struct {
		res   string
		write bool
		want  digest.Digest
		ok    bool
	}{
		{"blobs/blake3/" + b3.Hash + "/3", false, b3, true},
		{"inst/a/blobs/blake3/" + b3.Hash + "/3", false, b3, true},
		{"compressed-blobs/zstd/blake3/" + b3.Hash + "/3", false, b3, true},
		{"uploads/u1/blobs/blake3/" + b3.Hash + "/3/meta", true, b3, true},
		{"uploads/u1/compressed-blobs/zstd/blake3/" + b3.Hash + "/3", true, b3, true},
		// Without a segment, the length decides: 40 characters are SHA-1.
		{"blobs/" + s1.Hash + "/3", false, s1, true},
		// REAPI says MUST omit, but an explicit inferable name is harmless.
		{"blobs/sha1/" + s1.Hash + "/3", false, s1, true},
		// A name that disagrees with the hash length is refused.
		{"blobs/sha1/" + b3.Hash + "/3", false, digest.Digest{}, false},
		{"blobs/BLAKE3/" + b3.Hash + "/3", false, digest.Digest{}, false},
		{"blobs/blake3/3", false, digest.Digest{}, false},
	}
	for _, tc := range cases {
		var r digest.Resource
		var err error
		if tc.write {
			r, err = digest.ParseWriteResource(tc.res)
		} else {
			r, err = digest.ParseReadResource(tc.res)
		}
		if tc.ok != (err == nil) || (tc.ok && r.Digest != tc.want) {
			t.Errorf("parse %q = %+v, %v; want %+v ok=%v", tc.res, r.Digest, err, tc.want, tc.ok)
		}
	}
	// Built names parse back to the same digest.
	for _, name := range []string{digest.ReadResourceName("i", b3), digest.WriteResourceName("i", "u", b3), digest.CompressedReadResourceName("", "zstd", b3)} {
		r, err := digest.ParseReadResource(name)
		if err != nil {
			r, err = digest.ParseWriteResource(name)
		}
		if err != nil || r.Digest != b3 {
			t.Errorf("round trip %q = %+v, %v", name, r.Digest, err)
		}
	}
}

func TestDigestJSONKeepsOldForm(t *testing.T) {
	// Write-back queue and asset records are JSON: a SHA-256 digest must
	// encode as it did before functions existed, and others must say theirs.
	s := digest.OfBytes([]byte("abc"))
	b, err := json.Marshal(s)
	if err != nil || string(b) != `{"Hash":"`+s.Hash+`","Size":3}` {
		t.Fatalf("SHA-256 JSON = %s, %v", b, err)
	}
	b3 := digest.OfBytesIn(digest.BLAKE3, []byte("abc"))
	b, _ = json.Marshal(b3)
	var back digest.Digest
	if err := json.Unmarshal(b, &back); err != nil || back != b3 {
		t.Fatalf("BLAKE3 JSON %s read back as %+v, %v", b, back, err)
	}
	var old digest.Digest
	if err := json.Unmarshal([]byte(`{"Hash":"`+s.Hash+`","Size":3}`), &old); err != nil || old != s {
		t.Fatalf("old record read back as %+v, %v", old, err)
	}
}

func TestSumMatchesHasher(t *testing.T) {
	data := bytes.Repeat([]byte("castd"), 9000) // several BLAKE3 chunks
	for _, f := range digest.Functions {
		h := f.NewHasher()
		h.Write(data)
		if got, want := f.Sum(data), h.Sum(nil); !bytes.Equal(got, want) || len(got) != f.HashBytes() {
			t.Errorf("%s: Sum = %x, hasher = %x", f, got, want)
		}
	}
}
