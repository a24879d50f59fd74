package casd_test

import (
	"context"
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
)

func TestCapabilitiesListSHA256Only(t *testing.T) {
	// Why: BuildStream's cache directory holds SHA-256 blobs only (see
	// casdir), so castd as buildbox-casd must not offer other functions.
	e := newEnv(t)
	caps, err := repb.NewCapabilitiesClient(e.conn).GetCapabilities(context.Background(), &repb.GetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := caps.GetCacheCapabilities().GetDigestFunctions(); !slices.Equal(got, []repb.DigestFunction_Value{repb.DigestFunction_SHA256}) {
		t.Errorf("digest_functions = %v, want [SHA256]", got)
	}
}
