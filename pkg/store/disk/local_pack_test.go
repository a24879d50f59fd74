package disk_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// putSmall stores n blobs of 1-16 KiB (seeded from seed) and returns them.
func putSmall(t *testing.T, l *disk.Store, n int, seed uint64) map[digest.Digest][]byte {
	t.Helper()
	out := map[digest.Digest][]byte{}
	for i := range n {
		b, _ := blob(1<<10+int((seed+uint64(i))*7919%(15<<10)), seed+uint64(i))
		out[put(t, l, b)] = b
	}
	return out
}

// checkPacks fails unless every pack's tracked live bytes match the index
// and the pack directory holds exactly the packs the store knows.
func checkPacks(t *testing.T, dir string, l *disk.Store) []disk.PackInfo {
	t.Helper()
	packs := disk.PacksForTest(l)
	var known []string
	for _, p := range packs {
		if p.Live != p.Counted {
			t.Errorf("pack %d: %d live bytes tracked, %d in the index", p.ID, p.Live, p.Counted)
		}
		known = append(known, filepath.Base(p.Path))
	}
	des, err := os.ReadDir(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, de := range des {
		onDisk = append(onDisk, de.Name())
	}
	if !slices.Equal(known, onDisk) {
		t.Errorf("packs known %v, on disk %v", known, onDisk)
	}
	return packs
}

// restartAndCheck closes l, reopens dir with opts, waits until it is
// ready, checks the packs and reads every blob of blobs back.
func restartAndCheck(t *testing.T, l *disk.Store, dir string, opts disk.Options, blobs map[digest.Digest][]byte) *disk.Store {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openStore(t, dir, opts)
	waitReady(t, l)
	checkPacks(t, dir, l)
	readAllBack(t, l, blobs)
	return l
}

func readAllBack(t *testing.T, l *disk.Store, blobs map[digest.Digest][]byte) {
	t.Helper()
	for d, want := range blobs {
		got, err := l.GetBytes(context.Background(), d)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("GetBytes(%s) = %d bytes, %v; want %d bytes", d, len(got), err, len(want))
		}
	}
}

func TestLocalSmallBlobsFillPacksAndSurviveRestart(t *testing.T) {
	// Why: small blobs go to append-only pack files that are sealed at
	// their size; the index finds every blob again after a restart.
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	opts := disk.WithPackSizeForTest(disk.Options{Registerer: reg}, 64<<10)
	l := openStore(t, dir, opts)
	blobs := putSmall(t, l, 100, 1)
	packs := checkPacks(t, dir, l)
	if len(packs) < 5 {
		t.Fatalf("%d packs for ~850 KiB with 64 KiB packs", len(packs))
	}
	var live, size int64
	for _, p := range packs {
		if p.Size > 64<<10 {
			t.Errorf("pack %d grew to %d bytes past its 64 KiB size", p.ID, p.Size)
		}
		live += p.Live
		size += p.Size
	}
	if used := l.Stats().UsedBytes; live != used {
		t.Fatalf("packs hold %d live bytes, the store uses %d", live, used)
	}
	if got := testutil.MetricValue(t, reg, "castd_store_pack_bytes"); int64(got) != size {
		t.Fatalf("castd_store_pack_bytes = %v, packs hold %d bytes", got, size)
	}
	opts.Registerer = nil
	readAllBack(t, l, blobs)
	l = restartAndCheck(t, l, dir, opts, blobs)
	more := putSmall(t, l, 10, 1000) // appends after a restart land safely too
	readAllBack(t, l, more)
}

func TestLocalSmallBlobsKeepDiskWithinQuota(t *testing.T) {
	// Why: the quota bounds the disk the store occupies. An evicted small
	// blob's bytes stay in its pack until compaction rewrites the pack's
	// live blobs and removes it, so those bytes count as used, and a store
	// over its limit compacts before it evicts (and again after). The packs
	// never hold more than the quota; no sealed pack stays mostly garbage;
	// every kept blob reads back, also after a restart.
	const quota = 256 << 10
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	opts := disk.WithPackSizeForTest(disk.Options{QuotaBytes: quota, LowWatermark: 0.9, Registerer: reg}, 32<<10)
	l := openStore(t, dir, opts)
	waitReady(t, l)
	var kept map[digest.Digest][]byte
	for round := range 12 {
		kept = map[digest.Digest][]byte{}
		for i := range 10 {
			b, _ := blob(1<<10+(round*10+i)*977%(11<<10), uint64(round*100+i))
			kept[put(t, l, b)] = b
			var onDisk int64
			for _, p := range disk.PacksForTest(l) {
				onDisk += p.Size
			}
			if onDisk > quota || l.Stats().UsedBytes > quota {
				t.Fatalf("round %d: packs hold %d bytes, usage %d, quota %d", round, onDisk, l.Stats().UsedBytes, quota)
			}
		}
	}
	if l.Stats().Evictions == 0 {
		t.Fatal("no evictions; the test needs some")
	}
	if n := testutil.MetricValue(t, reg, "castd_store_pack_compactions_total"); n == 0 {
		t.Fatal("castd_store_pack_compactions_total = 0 after evictions")
	}
	disk.CompactPacksForTest(l)
	packs := checkPacks(t, dir, l)
	for _, p := range packs[:len(packs)-1] { // the last is the active pack
		if 2*p.Live <= p.Size {
			t.Errorf("sealed pack %d after compaction: %d live of %d bytes", p.ID, p.Live, p.Size)
		}
	}
	for d := range kept { // the last round is the newest: none evicted
		if !present(t, l, d) {
			t.Fatalf("%s (newest round) missing", d)
		}
	}
	readAllBack(t, l, kept)
	opts.Registerer = nil // the first store unregistered its metrics on Close
	restartAndCheck(t, l, dir, opts, kept)
}

func TestLocalPackCutShortOrLost(t *testing.T) {
	// Why: after a power loss a pack may be shorter than the index says, or
	// gone; the blobs whose bytes are missing are dropped (counted, then
	// reported missing) and the others are served.
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		dropAll bool
	}{
		{"cut short", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"lost", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, false},
		// Pack numbers are never reused, so the old entries cannot point
		// into the packs written after the loss.
		{"every pack lost", func(t *testing.T, path string) {
			if err := os.RemoveAll(filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := disk.WithPackSizeForTest(disk.Options{}, 64<<10)
			l := openStore(t, dir, opts)
			blobs := putSmall(t, l, 30, 7)
			before := disk.PacksForTest(l)
			first := before[0]
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, first.Path)
			reg := prometheus.NewRegistry()
			opts.Registerer = reg
			l = openStore(t, dir, opts)
			waitReady(t, l)
			var dropped int
			for d, b := range blobs {
				if !present(t, l, d) {
					dropped++
					continue
				}
				readAllBack(t, l, map[digest.Digest][]byte{d: b})
			}
			if dropped == 0 || (dropped == len(blobs)) != tc.dropAll {
				t.Fatalf("%d of %d blobs dropped; want all: %v", dropped, len(blobs), tc.dropAll)
			}
			readAllBack(t, l, putSmall(t, l, 30, 500))
			if p := disk.PacksForTest(l); p[0].ID <= before[len(before)-1].ID && tc.dropAll {
				t.Fatalf("pack number %d reused (packs before the loss: %v)", p[0].ID, before)
			}
			if got := testutil.MetricValue(t, reg, "castd_store_verify_failures_total"); int(got) != dropped {
				t.Fatalf("verify failures = %v, want %d", got, dropped)
			}
		})
	}
}

func TestLocalPackCutShortWhileServing(t *testing.T) {
	// Why: reads copy from a mapping of the pack; a pack truncated behind
	// the running store's back makes those reads fail (the blobs are
	// dropped as missing), it does not crash the daemon with SIGBUS.
	dir := t.TempDir()
	l := openStore(t, dir, disk.Options{})
	blobs := putSmall(t, l, 20, 11)
	if err := os.Truncate(disk.PacksForTest(l)[0].Path, 0); err != nil {
		t.Fatal(err)
	}
	for d := range blobs {
		if _, err := l.GetBytes(context.Background(), d); status.Code(err) != codes.NotFound {
			t.Fatalf("GetBytes(%s) from a truncated pack = %v, want NotFound", d, err)
		}
		if present(t, l, d) {
			t.Fatalf("%s still present after its bytes were found missing", d)
		}
	}
	if got := l.Stats().VerifyFailures; got != int64(len(blobs)) {
		t.Fatalf("verify failures = %d, want %d", got, len(blobs))
	}
}

func TestLocalSyncWritesStoresAndReopens(t *testing.T) {
	// Why: with SyncWrites every group is fsynced (packs, rolled packs,
	// their directory, large files) before it is acknowledged; the paths
	// work and everything reads back after a restart.
	dir := t.TempDir()
	opts := disk.WithPackSizeForTest(disk.Options{SyncWrites: true}, 16<<10)
	l := openStore(t, dir, opts)
	blobs := putSmall(t, l, 12, 21) // several rolled packs
	large, _ := blob(100<<10, 22)
	blobs[put(t, l, large)] = large
	restartAndCheck(t, l, dir, opts, blobs)
}

func TestLocalEvictionSpreadOverPacksStillMakesRoom(t *testing.T) {
	// Why: reads reorder recency, so the least recently used blobs can sit
	// in every pack rather than in the oldest ones. Evicting them leaves
	// each pack mostly live, which ordinary compaction (packs at most half
	// live) does not touch; the evicted bytes would still count against the
	// quota and a Put would fail with RESOURCE_EXHAUSTED although the store
	// had just freed enough, or (evicting round after round until packs
	// are half empty) lose far more of the cache than it needs to. A store
	// over its limit compacts the packs holding a quarter garbage or more,
	// the most first, until it fits.
	const (
		quota    = 64 << 10
		packSize = 16 << 10
		n        = 60 // 1 KiB each: four packs, all but the last full
	)
	dir := t.TempDir()
	opts := disk.WithPackSizeForTest(disk.Options{QuotaBytes: quota, LowWatermark: 0.9}, packSize)
	l := openStore(t, dir, opts)
	waitReady(t, l)
	ctx := context.Background()
	var ds []digest.Digest
	data := map[digest.Digest][]byte{}
	for i := range n {
		b, _ := blob(1<<10, uint64(1000+i))
		d := put(t, l, b)
		ds, data[d] = append(ds, d), b
	}
	// Use every blob again, one from each pack in turn: the oldest uses,
	// the first victims, are spread over all packs.
	perPack := packSize / (1 << 10)
	for j := range perPack {
		for p := 0; p*perPack+j < n; p++ {
			if _, err := l.GetBytes(ctx, ds[p*perPack+j]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 4 {
		b, d := blob(6<<10, uint64(2000+i))
		if err := l.PutBytes(ctx, d, b, store.PutHint{}); err != nil {
			t.Fatalf("Put %d over the quota: %v; want room made by eviction and compaction", i, err)
		}
		if i == 0 {
			kept := 0
			for _, d := range ds {
				if present(t, l, d) {
					kept++
				}
			}
			// Each round of eviction frees to the 0.9 low watermark, about
			// 9 of these blobs. Two rounds scatter enough garbage (a
			// quarter of each pack) for pressure compaction; evicting on
			// until packs are half empty would leave about 33.
			if kept < 40 {
				t.Fatalf("after the first Put over the quota %d of %d blobs are kept, %d evictions; want at least 40: room is made by compaction, not by evicting half the store", kept, n, l.Stats().Evictions)
			}
		}
		data[d] = b
		if u := l.Stats().UsedBytes; u > quota {
			t.Fatalf("usage %d after Put %d; quota %d", u, i, quota)
		}
	}
	if l.Stats().Evictions == 0 {
		t.Fatal("no evictions; the test needs some")
	}
	checkPacksWithin(t, dir, l, quota)
	readAllBack(t, l, keptOf(t, l, data))
}

// checkPacksWithin runs checkPacks and fails t if the packs hold more
// than quota bytes.
func checkPacksWithin(t *testing.T, dir string, l *disk.Store, quota int64) {
	t.Helper()
	var onDisk int64
	for _, p := range checkPacks(t, dir, l) {
		onDisk += p.Size
	}
	if onDisk > quota {
		t.Fatalf("packs hold %d bytes; quota %d", onDisk, quota)
	}
}

// keptOf returns the blobs of data that l still has.
func keptOf(t *testing.T, l *disk.Store, data map[digest.Digest][]byte) map[digest.Digest][]byte {
	t.Helper()
	kept := map[digest.Digest][]byte{}
	for d, b := range data {
		if present(t, l, d) {
			kept[d] = b
		}
	}
	return kept
}
