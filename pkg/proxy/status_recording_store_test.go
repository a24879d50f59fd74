package proxy_test

import (
	"context"
	"testing"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/proxy"
	"github.com/castd/castd/pkg/store"
)

func TestStatusRecordingCASCountsFastPaths(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	held := testutil.Put(t, mem, []byte("held"))
	absent := digest.OfBytes([]byte("absent"))
	for _, tc := range []struct {
		name, why          string
		call               func(store.CAS)
		wantHits, wantMiss int64
	}{
		{"GetWith hit", "a hinted read (the fan-out's stream from a remote) is a hit like Get",
			func(c store.CAS) {
				rc, err := c.GetWith(ctx, held, 0, store.GetHint{ConsumerVerifies: true})
				if err != nil {
					t.Fatal(err)
				}
				rc.Close()
			}, 1, 0},
		{"GetWith miss", "a hinted read the remote lacks is a miss like Get",
			func(c store.CAS) { _, _ = c.GetWith(ctx, absent, 0, store.GetHint{ConsumerVerifies: true}) }, 0, 1},
		{"GetMany", "a batch read is recorded once",
			func(c store.CAS) { c.GetMany(ctx, []digest.Digest{held}) }, 1, 0},
		{"writes", "writes are neither hits nor misses, whichever method",
			func(c store.CAS) {
				data := []byte("written")
				if err := c.PutBytes(ctx, digest.OfBytes(data), data, store.PutHint{}); err != nil {
					t.Fatal(err)
				}
			}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			cas, counts := proxy.NewStatusRecordingCAS(mem)
			tc.call(cas)
			if hits, misses := counts(); hits != tc.wantHits || misses != tc.wantMiss {
				t.Errorf("hits, misses = %d, %d; want %d, %d", hits, misses, tc.wantHits, tc.wantMiss)
			}
		})
	}
}
