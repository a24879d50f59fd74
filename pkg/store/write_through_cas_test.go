package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestWriteThroughCASWritesEveryPutToBoth(t *testing.T) {
	t.Log("a write with a hint goes to the local store with its hint and to the storage service, like Put")
	ctx := context.Background()
	base, primary := testutil.NewHintLog(store.NewMemory()), store.NewMemory()
	cas := store.NewWriteThroughCAS(base, primary, "cache.storage-service primary.example")
	streamed, verified := []byte("streamed in"), []byte("checked by a remote's client")
	ds, dv := digest.OfBytes(streamed), digest.OfBytes(verified)
	if err := cas.PutWith(ctx, ds, bytes.NewReader(streamed), store.PutHint{Uncached: true}); err != nil {
		t.Fatal(err)
	}
	if err := cas.PutBytes(ctx, dv, verified, store.PutHint{Verified: true}); err != nil {
		t.Fatal(err)
	}
	if m, err := primary.FindMissing(ctx, []digest.Digest{ds, dv}); err != nil || len(m) != 0 {
		t.Errorf("storage service lacks %v (%v)", m, err)
	}
	got := base.PutHints()
	if len(got) != 2 || got[0] != (store.PutHint{Uncached: true}) || got[1] != (store.PutHint{Verified: true}) {
		t.Errorf("local store saw hints %+v; want the callers' hints", got)
	}
}
