package disk_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalScrubDeletesCorruptBlobs(t *testing.T) {
	// Why: a scrub finds damage no client has read yet, in a packed blob
	// and in a large file alike, deletes exactly the bad blobs and says
	// which, so they can be refetched.
	reg := prometheus.NewRegistry()
	l := openStore(t, t.TempDir(), disk.Options{Registerer: reg})
	goodSmall, _ := blob(100, 31)
	badSmall, dSmall := blob(200, 32)
	goodLarge, _ := blob(2<<20, 33)
	badLarge, dLarge := blob(3<<20, 34)
	for _, b := range [][]byte{goodSmall, badSmall, goodLarge, badLarge} {
		put(t, l, b)
	}
	if err := disk.CorruptInlineForTest(l, dSmall, bytes.Repeat([]byte{7}, 200)); err != nil {
		t.Fatal(err)
	}
	rewrite(t, disk.BlobPathForTest(l, dLarge), func(c []byte) []byte { c[len(c)/2] ^= 1; return c })

	rep, err := l.Scrub(context.Background(), disk.ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 4 || rep.Corrupt != 2 || rep.Errors != 0 {
		t.Fatalf("scrub report %+v; want 4 checked, 2 corrupt, 0 errors", rep)
	}
	slices.SortFunc(rep.Deleted, func(a, b digest.Digest) int { return int(a.Size - b.Size) })
	if !slices.Equal(rep.Deleted, []digest.Digest{dSmall, dLarge}) {
		t.Fatalf("deleted %v; want %v", rep.Deleted, []digest.Digest{dSmall, dLarge})
	}
	for _, b := range [][]byte{badSmall, badLarge} {
		if present(t, l, digest.OfBytes(b)) {
			t.Fatalf("corrupt blob %s still present", digest.OfBytes(b))
		}
	}
	for _, b := range [][]byte{goodSmall, goodLarge} {
		if got, err := read(l, digest.OfBytes(b), 0); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("good blob after scrub: %d bytes, %v", len(got), err)
		}
	}
	for name, want := range map[string]float64{
		"castd_store_scrubbed_blobs_total":  4,
		"castd_store_scrub_corrupt_total":   2,
		"castd_store_verify_failures_total": 2,
	} {
		if v := testutil.MetricValue(t, reg, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	rep, err = l.Scrub(context.Background(), disk.ScrubOptions{})
	if err != nil || rep.Checked != 2 || rep.Corrupt != 0 {
		t.Fatalf("second scrub = %+v, %v; want 2 checked, none corrupt", rep, err)
	}
}

func TestLocalScrubKeepsToItsRate(t *testing.T) {
	// Why: a background scrub must not take the disk from clients; at
	// 1 MiB/s, 3 MiB and a bit take just over three seconds.
	l := openStore(t, t.TempDir(), disk.Options{})
	big, _ := blob(3<<20, 35)
	small, _ := blob(1000, 36)
	put(t, l, big)
	put(t, l, small)
	start := time.Unix(1000, 0)
	clock := clock.NewFake(start)
	clock.OnSleep(clock.Advance)
	rep, err := l.Scrub(context.Background(), disk.ScrubOptions{BytesPerSecond: 1 << 20, Clock: clock})
	if err != nil || rep.Checked != 2 {
		t.Fatalf("Scrub = %+v, %v", rep, err)
	}
	total := float64(len(big) + len(small))
	want := time.Duration(total / (1 << 20) * float64(time.Second))
	if got := clock.Now().Sub(start); got < want-time.Millisecond || got > want+time.Millisecond {
		t.Fatalf("scrub took %v of clock time; want %v", got, want)
	}
	if n := len(clock.Sleeps()); n < 3 {
		t.Fatalf("scrub slept %d times; want a wait per chunk read", n)
	}
}

func TestLocalScrubStopsWithItsContext(t *testing.T) {
	// Why: shutdown must not wait for a slow scrub to finish.
	l := openStore(t, t.TempDir(), disk.Options{})
	b, _ := blob(2<<20, 37)
	put(t, l, b)
	ctx, cancel := context.WithCancel(context.Background())
	clock := clock.NewFake(time.Unix(1000, 0))
	clock.OnSleep(func(time.Duration) { cancel() })
	if _, err := l.Scrub(ctx, disk.ScrubOptions{BytesPerSecond: 1, Clock: clock}); err == nil {
		t.Fatal("a cancelled scrub returned no error")
	}
	if !present(t, l, digest.OfBytes(b)) {
		t.Fatal("an interrupted scrub deleted a good blob")
	}
}
