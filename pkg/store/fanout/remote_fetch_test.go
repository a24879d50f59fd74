package fanout_test

import (
	"context"
	"slices"
	"testing"

	"github.com/castd/castd/internal/testutil"
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
