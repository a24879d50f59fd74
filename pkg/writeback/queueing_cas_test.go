package writeback_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/writeback"
)

func TestQueueingCASKeepsFastPaths(t *testing.T) {
	// Wrapping a CAS for write-back must neither skip the queue on the
	// no-copy write path nor hide the batch read paths of what it wraps.
	s := openStore(t, t.TempDir())
	remote := newFlakyRemote()
	q := newQueue(t, s, remote, writeback.Options{BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	cas := writeback.NewQueueingCAS(s, q, userTarget)
	ctx := context.Background()

	data := []byte("written with PutBytes")
	d := digest.OfBytes(data)
	if err := cas.PutBytes(ctx, d, data, store.PutHint{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the push of a PutBytes write", func() bool { return remote.has(d) })

	missing := digest.OfBytes([]byte("never stored"))
	rs := cas.GetMany(ctx, []digest.Digest{d, missing})
	if !bytes.Equal(rs[0].Data, data) || rs[0].Err != nil || rs[1].Err == nil {
		t.Fatalf("GetMany = %+v", rs)
	}
	if got, err := store.ReadBytes(ctx, cas, d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadBytes = %q, %v", got, err)
	}
}

func TestQueueingCASQueuesHintedWrites(t *testing.T) {
	// A write that comes with a hint (a blob streamed in from a remote,
	// stored uncached; bytes a remote's client verified) is queued like
	// any other, and the hint reaches the store.
	s := openStore(t, t.TempDir())
	remote := newFlakyRemote()
	q := newQueue(t, s, remote, writeback.Options{BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	base := testutil.NewHintLog(s)
	cas := writeback.NewQueueingCAS(base, q, userTarget)
	ctx := context.Background()

	streamed, verified := []byte("streamed in, not read soon"), []byte("checked by the remote's client")
	ds, dv := digest.OfBytes(streamed), digest.OfBytes(verified)
	if err := cas.PutWith(ctx, ds, bytes.NewReader(streamed), store.PutHint{Uncached: true}); err != nil {
		t.Fatal(err)
	}
	if err := cas.PutBytes(ctx, dv, verified, store.PutHint{Verified: true}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the pushes of both hinted writes", func() bool { return remote.has(ds) && remote.has(dv) })
	want := []store.PutHint{{Uncached: true}, {Verified: true}}
	if got := base.PutHints(); !slices.Equal(got, want) {
		t.Errorf("the store saw hints %+v, want %+v", got, want)
	}
}
