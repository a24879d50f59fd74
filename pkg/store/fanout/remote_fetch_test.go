package fanout_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// hintRecordingCAS notes whether Get was told that its reader's consumer
// verifies the bytes.
type hintRecordingCAS struct {
	store.CAS
	told, untold atomic.Int32
}

func (c *hintRecordingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if store.ConsumerVerifies(ctx) {
		c.told.Add(1)
	} else {
		c.untold.Add(1)
	}
	return c.CAS.Get(ctx, d, offset)
}

// uncachedRecordingCAS counts the Puts that came as PutUncached.
type uncachedRecordingCAS struct {
	store.CAS
	uncached, plain atomic.Int32
}

func (c *uncachedRecordingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	c.plain.Add(1)
	return c.CAS.Put(ctx, d, r)
}

func (c *uncachedRecordingCAS) PutUncached(ctx context.Context, d digest.Digest, r io.Reader) error {
	c.uncached.Add(1)
	return c.CAS.Put(ctx, d, r)
}

func TestFetchStoresVerifiedOnceAndUncached(t *testing.T) {
	t.Log("a blob streamed from a remote into local is hashed once (by the local Put, so the remote client is told not to) and stored as not to be read soon")
	ctx := context.Background()
	d, _ := blob("streamed")
	remote := &hintRecordingCAS{CAS: memoryWith(t, "streamed")}
	local := &uncachedRecordingCAS{CAS: store.NewMemory()}
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: remote}}, fanout.Options{})
	got, err := readAll(ctx, c, d, 0)
	if err != nil || got != "streamed" {
		t.Fatalf("Get through the fan-out = %q, %v", got, err)
	}
	if remote.told.Load() != 1 || remote.untold.Load() != 0 {
		t.Errorf("remote Gets told the consumer verifies: %d, not told: %d; want 1, 0", remote.told.Load(), remote.untold.Load())
	}
	if local.uncached.Load() != 1 || local.plain.Load() != 0 {
		t.Errorf("local puts uncached: %d, plain: %d; want 1, 0", local.uncached.Load(), local.plain.Load())
	}
	if !has(t, local, d) {
		t.Fatal("the fetched blob is not in local")
	}
}
