package writeback_test

import (
	"bytes"
	"context"
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
	bp, ok := cas.(store.BytesPutter)
	if !ok {
		t.Fatal("queueing CAS hides BytesPutter")
	}
	if err := bp.PutBytes(ctx, d, data); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the push of a PutBytes write", func() bool { return remote.has(d) })

	bg, ok := cas.(store.BatchGetter)
	if !ok {
		t.Fatal("queueing CAS hides BatchGetter")
	}
	missing := digest.OfBytes([]byte("never stored"))
	rs := bg.GetMany(ctx, []digest.Digest{d, missing})
	if !bytes.Equal(rs[0].Data, data) || rs[0].Err != nil || rs[1].Err == nil {
		t.Fatalf("GetMany = %+v", rs)
	}
	if got, err := cas.(store.BytesGetter).GetBytes(ctx, d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBytes = %q, %v", got, err)
	}
}
