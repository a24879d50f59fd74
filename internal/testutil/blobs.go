package testutil

import (
	"bytes"
	"context"
	"testing"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Put stores b in cas and returns its digest, failing the test on error.
func Put(t testing.TB, cas store.CAS, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(b)
	if err := cas.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put(%s): %v", d, err)
	}
	return d
}
