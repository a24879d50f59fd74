package disk_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalPacksUnderConcurrentPutsReadsEvictionsAndCompaction(t *testing.T) {
	// Why: writers, readers, evictions at a small quota and compactions all
	// run at once on packed blobs. A read returns the right bytes or
	// NOT_FOUND (evicted), never other bytes or another error; nothing is
	// found corrupt; afterwards every pack's live bytes match the index,
	// the packs fit the quota, and every blob still indexed reads back
	// after a restart.
	const (
		quota   = 512 << 10
		writers = 4
		perW    = 150
	)
	dir := t.TempDir()
	opts := disk.WithPackSizeForTest(disk.Options{QuotaBytes: quota, LowWatermark: 0.7}, 32<<10)
	l := openStore(t, dir, opts)
	waitReady(t, l)

	var mu sync.Mutex
	written := map[digest.Digest][]byte{}
	var order []digest.Digest
	var writersWG, othersWG sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		writersWG.Go(func() {
			for i := range perW {
				seed := uint64(w*perW + i)
				b, d := blob(1<<10+int(seed*613%(7<<10)), seed)
				if err := l.PutBytes(context.Background(), d, b, store.PutHint{}); err != nil {
					t.Errorf("PutBytes(%s): %v", d, err)
					return
				}
				mu.Lock()
				written[d] = b
				order = append(order, d)
				mu.Unlock()
			}
		})
	}
	for r := range 4 {
		othersWG.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				if len(order) == 0 {
					mu.Unlock()
					continue
				}
				d := order[(i*7+r)%len(order)]
				want := written[d]
				mu.Unlock()
				got, err := l.GetBytes(context.Background(), d)
				switch {
				case status.Code(err) == codes.NotFound:
				case err != nil:
					t.Errorf("GetBytes(%s): %v", d, err)
					return
				case !bytes.Equal(got, want):
					t.Errorf("GetBytes(%s): wrong bytes", d)
					return
				}
			}
		})
	}
	othersWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				disk.CompactPacksForTest(l)
			}
		}
	})
	writersWG.Wait()
	close(stop)
	othersWG.Wait()

	st := l.Stats()
	if st.Evictions == 0 {
		t.Fatal("no evictions; the test needs some")
	}
	if st.VerifyFailures != 0 {
		t.Fatalf("%d blobs found corrupt", st.VerifyFailures)
	}
	checkPacksWithin(t, dir, l, quota)
	kept := keptOf(t, l, written)
	if len(kept) == 0 {
		t.Fatal("nothing kept")
	}
	restartAndCheck(t, l, dir, opts, kept)
}
