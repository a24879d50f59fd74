package integration_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/castd/castd/internal/testutil"
)

// scrubSetup starts an upstream castd and a workstation castd pulling from
// it (extra YAML appended to the workstation's config), stores a 3 MiB
// blob in both, and corrupts the workstation's copy on disk in its middle
// chunk. It returns the workstation and the blob.
func scrubSetup(t *testing.T, extra string) (*upstream, *castdProc, *layout, blob) {
	t.Helper()
	up := startPlainUpstream(t)
	l := newLayout(t)
	ws, conn, _ := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n%s", up.serverYAML("storage", false), extra))
	ctx := ctxFor(t, time.Minute)
	b := randomBlob(3 << 20)
	if err := bytestreamWrite(ctx, up.conn(t), b); err != nil {
		t.Fatal(err)
	}
	// A read through the workstation stores its local copy (a write would
	// find the blob upstream and store nothing).
	if got, err := readBlob(ctx, conn, b.d); err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("cold read through the workstation: %d bytes, %v", len(got), err)
	}
	corruptFile(t, blobFile(l.store, b.d))
	return up, ws, l, b
}

func TestScrubCorruptLocalCopyReadCompletesFromUpstream(t *testing.T) {
	// Why: a flipped byte in the local copy used to cost the first
	// ByteStream Read two good chunks and then DATA_LOSS, which Bazel does
	// not retry; while a remote has the blob the first read must succeed,
	// and the local copy must be repaired by it.
	up, ws, _, b := scrubSetup(t, "")
	conn := dialUnix(t, ws.socket)
	ctx := ctxFor(t, time.Minute)
	got, err := readBlob(ctx, conn, b.d)
	if err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("first read of the corrupt blob: %d bytes, %v; want the exact %d bytes", len(got), err, len(b.data))
	}
	up.kill9()
	got, err = readBlob(ctx, conn, b.d)
	if err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("read with the upstream gone: %d bytes, %v; want the repaired local copy", len(got), err)
	}
}

func TestScrubBstReportsAndRefetches(t *testing.T) {
	// Why: `bst scrub` finds damage nobody has read yet, deletes it,
	// fetches the blob again from the remote and says so.
	up, ws, _, b := scrubSetup(t, "")
	var rep struct {
		Checked   int64 `json:"checked"`
		Bad       int64 `json:"bad"`
		Refetched int64 `json:"refetched"`
	}
	decodeJSON(t, mustBst(t, ws.socket, "", "scrub", "--json").stdout, &rep)
	if rep.Checked < 1 || rep.Bad != 1 || rep.Refetched != 1 {
		t.Fatalf("bst scrub --json = %+v; want 1 bad, 1 refetched", rep)
	}
	if n := metricValue(t, scrape(t, ws.metricsURL()), "castd_scrub_refetched_total"); n != 1 {
		t.Fatalf("castd_scrub_refetched_total = %v, want 1", n)
	}
	text := mustBst(t, ws.socket, "", "scrub").stdout
	if want := "0 bad, 0 refetched"; !bytes.Contains([]byte(text), []byte(want)) {
		t.Fatalf("second bst scrub printed %q; want %q", text, want)
	}
	up.kill9()
	got, err := readBlob(ctxFor(t, time.Minute), dialUnix(t, ws.socket), b.d)
	if err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("read after the scrub with the upstream gone: %d bytes, %v", len(got), err)
	}
}

func TestScrubInTheBackground(t *testing.T) {
	// Why: with cache.scrub-interval set, castd finds and repairs the
	// damage on its own.
	up, ws, _, b := scrubSetup(t, "cache:\n  scrub-interval: 1s\n")
	testutil.EventuallyWithin(t, time.Minute, "the background scrub to refetch the corrupt blob", func() bool {
		return metricValue(t, scrape(t, ws.metricsURL()), "castd_scrub_refetched_total") == 1
	})
	if n := metricValue(t, scrape(t, ws.metricsURL()), "castd_store_scrub_corrupt_total"); n != 1 {
		t.Fatalf("castd_store_scrub_corrupt_total = %v, want 1", n)
	}
	up.kill9()
	got, err := readBlob(ctxFor(t, time.Minute), dialUnix(t, ws.socket), b.d)
	if err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("read after the background scrub with the upstream gone: %d bytes, %v", len(got), err)
	}
}
