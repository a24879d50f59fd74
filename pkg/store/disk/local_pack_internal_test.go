package disk

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// smallBlob is n pseudo-random bytes distinct per seed.
func smallBlob(n int, seed uint64) ([]byte, digest.Digest) {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, digest.OfBytes(b)
}

// packWithGarbage stores keep plus filler blobs in 16 KiB packs, then
// deletes the filler, so every sealed pack is mostly garbage.
func packWithGarbage(t *testing.T, keep int) (*Store, map[digest.Digest][]byte) {
	t.Helper()
	l, err := Open(t.TempDir(), Options{packSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	<-l.Ready()
	kept := map[digest.Digest][]byte{}
	var filler []victim
	for i := range keep * 4 {
		b, d := smallBlob(2<<10, uint64(i))
		if err := l.PutBytes(context.Background(), d, b, store.PutHint{}); err != nil {
			t.Fatal(err)
		}
		k, _ := keyOf(d)
		if i%4 == 0 {
			kept[d] = b
			continue
		}
		filler = append(filler, victim{k: k})
	}
	l.evictMu.Lock()
	for i, v := range filler {
		filler[i].e, _ = l.ix.take(v.k, true)
	}
	l.deleteBlobs(filler)
	for _, v := range filler {
		l.ix.release(v.k)
	}
	l.evictMu.Unlock()
	return l, kept
}

func TestReadOfBlobMovedByCompactionLooksAgain(t *testing.T) {
	// Why: a reader that looked a blob up just before compaction moved it
	// and removed its old pack reads it from its new place; it is not
	// mistaken for a lost blob and deleted.
	l, kept := packWithGarbage(t, 8)
	var d digest.Digest
	var k blobKey
	var stale entry
	for d = range kept { // one in a sealed pack
		k, _ = keyOf(d)
		if stale, _ = l.ix.peek(k); stale.pack != l.packs.activePack().id {
			break
		}
	}
	l.compactPacks()
	if now, _ := l.ix.peek(k); now.pack == stale.pack {
		t.Fatalf("blob still in pack %d after compaction", stale.pack)
	}
	if l.packs.holds(stale.pack, 0) {
		t.Fatalf("pack %d not removed", stale.pack)
	}
	got, err := l.readInline(k, stale)
	if err != nil || !bytes.Equal(got, kept[d]) {
		t.Fatalf("read with the entry from before compaction = %d bytes, %v", len(got), err)
	}
	if n := l.verifyFailures.Load(); n != 0 {
		t.Fatalf("%d blobs dropped as corrupt", n)
	}
}

func TestReadsDuringCompactionSucceed(t *testing.T) {
	// Why: compaction moves blobs while they are read; every read returns
	// the right bytes.
	l, kept := packWithGarbage(t, 64)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				for d, want := range kept {
					select {
					case <-stop:
						return
					default:
					}
					got, err := l.GetBytes(context.Background(), d)
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("GetBytes(%s) during compaction = %d bytes, %v", d, len(got), err)
						return
					}
				}
			}
		})
	}
	before := len(l.packs.sparse())
	l.compactPacks()
	close(stop)
	wg.Wait()
	if before == 0 || len(l.packs.sparse()) > 1 { // at most the newly sealed pack
		t.Fatalf("sparse packs: %d before compaction, %d after", before, len(l.packs.sparse()))
	}
}
