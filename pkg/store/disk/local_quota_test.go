package disk_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalEvictsLeastRecentlyUsed(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		// Inline blobs are evicted from the index.
		{"inline blobs", 10 << 10},
		// File blobs are evicted from disk.
		{"file blobs", 20 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: over quota, the oldest blobs go first, down to the low watermark.
			reg := prometheus.NewRegistry()
			quota := int64(10 * tc.size)
			l := openStore(t, t.TempDir(), disk.Options{QuotaBytes: quota, LowWatermark: 0.5, Registerer: reg})
			waitReady(t, l)
			var ds []digest.Digest
			for i := range 10 {
				b, _ := blob(tc.size, uint64(i))
				ds = append(ds, put(t, l, b))
			}
			present(t, l, ds[0]) // FindMissing counts as use: blob 0 is now the newest
			b, _ := blob(tc.size, 10)
			ds = append(ds, put(t, l, b))
			// 11 blobs over a quota of 10; down to 5: the 6 oldest (1..6) go.
			missing, err := l.FindMissing(context.Background(), ds)
			if err != nil {
				t.Fatal(err)
			}
			if want := ds[1:7]; !sameSet(missing, want) {
				t.Fatalf("evicted %v, want %v", missing, want)
			}
			if st := l.Stats(); st.Evictions != 6 || st.UsedBytes != 5*int64(tc.size) {
				t.Fatalf("Stats = %+v, want 6 evictions and 5 blobs left", st)
			}
			if v := testutil.MetricValue(t, reg, "castd_store_evictions_total"); v != 6 {
				t.Fatalf("castd_store_evictions_total = %v, want 6", v)
			}
		})
	}
}

func TestLocalPinnedBlobIsNotEvicted(t *testing.T) {
	const size = 40 << 10
	for _, tc := range []struct {
		name     string
		blobs    int // stored before the reader opens the first one
		wantCode codes.Code
	}{
		// Another blob can make room: it goes, the pinned (older) one stays.
		{"other blob evicted instead", 2, codes.OK},
		// Only the pinned blob could make room: the Put fails, retryably.
		{"nothing evictable", 1, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: eviction never removes a blob a running request is reading.
			l := openStore(t, t.TempDir(), disk.Options{QuotaBytes: 100 << 10, LowWatermark: 0.5})
			waitReady(t, l)
			var ds []digest.Digest
			for i := range tc.blobs {
				b, _ := blob(size*(3-tc.blobs), uint64(i))
				ds = append(ds, put(t, l, b))
			}
			rc, err := l.Get(context.Background(), ds[0], 0)
			if err != nil {
				t.Fatal(err)
			}
			b, d := blob(60<<10, 99)
			err = l.Put(context.Background(), d, bytes.NewReader(b))
			if status.Code(err) != tc.wantCode {
				t.Fatalf("Put needing room = %v, want %v", err, tc.wantCode)
			}
			if !present(t, l, ds[0]) {
				t.Fatal("pinned blob was evicted")
			}
			_ = rc.Close()
			if tc.wantCode != codes.OK {
				put(t, l, b) // once unpinned, the old blob makes room
				if present(t, l, ds[0]) {
					t.Fatal("unpinned blob was not evicted to make room")
				}
			}
		})
	}
}

func TestLocalBlobLargerThanQuota(t *testing.T) {
	// Why: a blob that can never fit is a deterministic, non-retryable failure.
	l := openStore(t, t.TempDir(), disk.Options{QuotaBytes: 64 << 10})
	b, d := blob(100<<10, 1)
	err := l.Put(context.Background(), d, bytes.NewReader(b))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Put over quota = %v, want FAILED_PRECONDITION", err)
	}
	if st := l.Stats(); st.UsedBytes != 0 {
		t.Fatalf("UsedBytes = %d after rejected Put", st.UsedBytes)
	}
}
