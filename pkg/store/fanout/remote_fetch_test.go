package fanout_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

func TestFetchStoresVerifiedOnceAndUncached(t *testing.T) {
	t.Log("a blob streamed from a remote into local is hashed once (by the local Put, so the remote client is told not to) and stored as not to be read soon")
	ctx := context.Background()
	d, _ := blob("streamed")
	remote := testutil.NewHintLog(memoryWith(t, "streamed"))
	local := testutil.NewHintLog(store.NewMemory())
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: remote}}, fanout.Options{})
	got, err := readAll(ctx, c, d, 0)
	if err != nil || got != "streamed" {
		t.Fatalf("Get through the fan-out = %q, %v", got, err)
	}
	if got, want := remote.GetHints(), []store.GetHint{{ConsumerVerifies: true}}; !slices.Equal(got, want) {
		t.Errorf("remote reads had hints %+v; want %+v (told the consumer verifies)", got, want)
	}
	if got, want := local.PutHints(), []store.PutHint{{Uncached: true}}; !slices.Equal(got, want) {
		t.Errorf("local puts had hints %+v; want %+v (uncached)", got, want)
	}
	if !has(t, local, d) {
		t.Fatal("the fetched blob is not in local")
	}
}

func TestWritesReachLocalWithTheirHint(t *testing.T) {
	t.Log("a write to the fan-out goes to local by the caller's method, with the caller's hint: the fan-out must not turn a no-copy or uncached write into a plain Put")
	ctx := context.Background()
	local := testutil.NewHintLog(store.NewMemory())
	c := fanout.NewCAS(local, nil, fanout.Options{})
	streamed, verified := []byte("streamed"), []byte("verified")
	if err := c.PutWith(ctx, digest.OfBytes(streamed), bytes.NewReader(streamed), store.PutHint{Uncached: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutBytes(ctx, digest.OfBytes(verified), verified, store.PutHint{Verified: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := local.PutHints(), []store.PutHint{{Uncached: true}, {Verified: true}}; !slices.Equal(got, want) {
		t.Errorf("local writes had hints %+v; want %+v", got, want)
	}
	for _, b := range [][]byte{streamed, verified} {
		if !has(t, local, digest.OfBytes(b)) {
			t.Errorf("%q is not in local", b)
		}
	}
}
