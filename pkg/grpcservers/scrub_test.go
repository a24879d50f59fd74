package grpcservers_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

// oneFanout serves a single instance "" over cas.
type oneFanout struct{ cas store.CAS }

func (oneFanout) Instances() []string { return []string{""} }

func (f oneFanout) CAS(context.Context, string) (store.CAS, error) { return f.cas, nil }

// scrubFixture is a store on disk holding a packed and two large blobs, all
// three corrupted on disk; the remote holds the first two.
type scrubFixture struct {
	local                *disk.Store
	scrubber             *grpcservers.Scrubber
	reg                  *prometheus.Registry
	small, large, large2 []byte
}

func newScrubFixture(t *testing.T, opts grpcservers.ScrubberOptions) *scrubFixture {
	t.Helper()
	dir := t.TempDir()
	local, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	f := &scrubFixture{local: local, reg: prometheus.NewRegistry(),
		small: randomBytes(300, 1), large: randomBytes(3<<20, 2), large2: randomBytes(1<<20+7, 3)}
	remote := store.NewMemory()
	for _, b := range [][]byte{f.small, f.large, f.large2} {
		putBlob(t, local, b)
	}
	putBlob(t, remote, f.small)
	putBlob(t, remote, f.large)
	corruptPacked(t, dir, f.small)
	for _, b := range [][]byte{f.large, f.large2} {
		d := digest.OfBytes(b)
		testutil.FlipByte(t, filepath.Join(dir, "cas", d.Hash[:2], d.Hash+"-"+strconv.FormatInt(d.Size, 10)), int64(len(b)/2))
	}
	opts.Registerer = f.reg
	f.scrubber = grpcservers.NewScrubber(local, oneFanout{fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: remote}}, fanout.Options{})}, opts)
	return f
}

// check asserts the outcome of one scrub of the fixture.
func (f *scrubFixture) check(t *testing.T) {
	t.Helper()
	for _, b := range [][]byte{f.small, f.large} {
		if got, err := readLocal(f.local, digest.OfBytes(b)); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("refetched blob %s: %d bytes, %v; want its content", digest.OfBytes(b), len(got), err)
		}
	}
	if _, err := readLocal(f.local, digest.OfBytes(f.large2)); status.Code(err) != codes.NotFound {
		t.Fatalf("corrupt blob no remote has: %v, want NOT_FOUND (deleted)", err)
	}
	if v := testutil.MetricValue(t, f.reg, "castd_scrub_refetched_total"); v != 2 {
		t.Fatalf("castd_scrub_refetched_total = %v, want 2", v)
	}
}

func TestScrubDeletesCorruptBlobsAndRefetchesThem(t *testing.T) {
	// Why: damage no client has read yet is found, deleted and repaired
	// from a remote, in a packed blob and in large files alike; a blob no
	// remote has is only deleted.
	f := newScrubFixture(t, grpcservers.ScrubberOptions{})
	res, err := f.scrubber.Run(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 3 || res.Corrupt != 3 || res.Refetched != 2 || res.Errors != 0 {
		t.Fatalf("scrub = %+v; want 3 checked, 3 bad, 2 refetched", res)
	}
	f.check(t)
}

func TestScrubRunsInTheBackground(t *testing.T) {
	// Why: cache.scrub-interval scrubs without anyone asking, once per
	// interval, and Stop ends it.
	clock := clock.NewFake(time.Unix(1_000_000, 0))
	f := newScrubFixture(t, grpcservers.ScrubberOptions{Clock: clock})
	f.scrubber.Start(time.Hour, 0)
	first := testutil.WaitArmed(t, clock, -1)
	clock.Advance(time.Hour - time.Nanosecond)
	if i := pending(clock); i != first {
		t.Fatalf("the interval's timer is gone a nanosecond before the hour (pending: %d)", i)
	}
	clock.Advance(time.Nanosecond)      // the loop scrubs once, then waits again
	testutil.WaitArmed(t, clock, first) // armed only once the first scrub is over
	f.check(t)
	f.scrubber.Stop()
}

// pending returns the number of c's first pending timer, or -1.
func pending(c *clock.Fake) int {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	i, _ := c.WaitArmed(ctx, -1)
	return i
}

func putBlob(t *testing.T, cas store.CAS, b []byte) {
	t.Helper()
	if err := cas.Put(context.Background(), digest.OfBytes(b), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func readLocal(l *disk.Store, d digest.Digest) ([]byte, error) {
	rc, err := l.Get(context.Background(), d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// corruptPacked flips a byte of the small blob b where it sits in a pack
// file of the store in dir.
func corruptPacked(t *testing.T, dir string, b []byte) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*"))
	for _, p := range packs {
		content, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(content, b); i >= 0 {
			testutil.FlipByte(t, p, int64(i+len(b)/2))
			return
		}
	}
	t.Fatalf("blob of %d bytes not found in the packs %v", len(b), packs)
}

// tick hands the background loop its next tick, failing if it never asks.
