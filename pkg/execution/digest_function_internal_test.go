package execution

import (
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestServiceFunctions(t *testing.T) {
	// Why: castd sends an execution service only functions it advertises;
	// REAPI has services list them in digest_functions, older ones in the
	// deprecated digest_function, and the oldest say nothing (SHA-256).
	for _, tc := range []struct {
		name, caps string
		want       digest.FunctionSet
	}{
		{"no execution capabilities", ``, digest.SetOf(digest.SHA256)},
		{"neither field", `execution_capabilities { exec_enabled: true }`, digest.SetOf(digest.SHA256)},
		{"deprecated field only", `execution_capabilities { digest_function: SHA1 }`, digest.SetOf(digest.SHA1)},
		{"list wins over the deprecated field",
			`execution_capabilities { digest_function: SHA256 digest_functions: [SHA256, BLAKE3] }`, digest.SetOf(digest.SHA256, digest.BLAKE3)},
		{"functions castd cannot verify are left out", `execution_capabilities { digest_functions: [VSO] }`, 0},
		{"the cache's list is not the execution service's",
			`cache_capabilities { digest_functions: [BLAKE3] } execution_capabilities { digest_function: SHA256 }`, digest.SetOf(digest.SHA256)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := serviceFunctions(parse(t, tc.caps, &repb.ServerCapabilities{})); got != tc.want {
				t.Errorf("serviceFunctions = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMissingInActionFunction(t *testing.T) {
	// Why: a service may name a missing BLAKE3 blob "blobs/{hash}/{size}";
	// read as SHA-256 it would never be found to upload again.
	b3 := digest.OfBytesIn(digest.BLAKE3, []byte("input"))
	err := store.MissingBlobsError("the remote", []digest.Digest{{Hash: b3.Hash, Size: b3.Size}})
	if got := missingIn(digest.BLAKE3, err); len(got) != 1 || got[0] != b3 {
		t.Errorf("missingIn = %v, want [%v]", got, b3)
	}
}
