package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/castd/castd/internal/testutil"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// procCount is the number of entries in a directory (fds under
// /proc/PID/fd, files in a store's tmp directory).
func procCount(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// rss returns a process's resident set size (VmRSS) in bytes.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// ctxTimeout is a context that ends after d or with t.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestByteStreamCancelledWritesReleaseFDsAndFiles(t *testing.T) {
	// why: 10,000 cancelled Write streams left castd holding 10,047 fds and
	// 10,006 temp files (issue #12 item 6); they must all come back.
	const streams, idle, maxIdle = 2000, 40 * time.Second, 256 // idle: far longer than opening the streams takes
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(fmt.Sprintf("cache:\n  upload-idle-timeout: %v\n", idle)))
	conns := make([]*grpc.ClientConn, 8)
	for i := range conns { // connected before the baseline: each costs castd an fd
		conns[i] = dialUnix(t, p.socket)
		if _, err := findMissing(ctxTimeout(t, time.Minute), conns[i], randomBlob(1).d); err != nil {
			t.Fatal(err)
		}
	}
	fdDir, tmpDir := fmt.Sprintf("/proc/%d/fd", p.pid()), filepath.Join(l.store, "tmp")
	baseFDs, baseTmp, baseRSS := procCount(t, fdDir), procCount(t, tmpDir), rss(t, p.pid())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	half := make([]byte, 64<<10)
	start0 := time.Now()
	for i := range streams {
		// Only finish_write verifies the bytes, so any hash will do.
		var h [32]byte
		_, _ = rand.Read(h[:])
		name := fmt.Sprintf("uploads/u-%d/blobs/%s/%d", i, hex.EncodeToString(h[:]), 2*len(half))
		stream, err := bspb.NewByteStreamClient(conns[i%len(conns)]).Write(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&bspb.WriteRequest{ResourceName: name, Data: half}); err != nil {
			t.Fatal(err)
		}
	}
	opened := time.Now()
	peakFDs, peakTmp := 0, 0
	if !testutil.Poll(idle/2, func() bool {
		peakFDs, peakTmp = procCount(t, fdDir), procCount(t, tmpDir)
		return peakFDs >= baseFDs+streams && peakTmp >= baseTmp+streams
	}) {
		t.Fatalf("with %d uploads open castd holds %d fds (%d before) and %d temp files; want one of each per upload", streams, peakFDs, baseFDs, peakTmp)
	}
	peakRSS := rss(t, p.pid())
	cancel()
	start := time.Now()
	var fds int
	if !testutil.Poll(30*time.Second, func() bool { fds = procCount(t, fdDir); return fds <= baseFDs+2 }) {
		t.Fatalf("%d fds after the %d uploads were cancelled, %d before", fds, streams, baseFDs)
	}
	fdsBack := time.Since(start)
	var tmpAtFDs int
	if !testutil.Poll(idle/2, func() bool { tmpAtFDs = procCount(t, tmpDir); return tmpAtFDs <= baseTmp+maxIdle }) {
		t.Fatalf("%d temp files after the uploads were cancelled; want at most %d kept for resumption before the idle timeout", tmpAtFDs, maxIdle)
	}
	var tmp int
	if !testutil.Poll(idle+30*time.Second, func() bool { tmp = procCount(t, tmpDir); return tmp == baseTmp }) {
		t.Fatalf("%d temp files after the uploads were cancelled and the idle timeout passed, %d before", tmp, baseTmp)
	}
	heap := metricValue(t, scrape(t, p.metricsURL()), "go_memstats_heap_inuse_bytes")
	t.Logf("opened %d uploads in %v; fds %d before, %d with them open, %d %v after cancelling; temp files %d, %d, %d when the fds were back, %d after the idle timeout; RSS %d MiB, %d MiB, %d MiB (heap in use %d MiB)",
		streams, opened.Sub(start0).Round(time.Millisecond), baseFDs, peakFDs, fds, fdsBack.Round(time.Millisecond), baseTmp, peakTmp, tmpAtFDs, tmp,
		baseRSS>>20, peakRSS>>20, rss(t, p.pid())>>20, int64(heap)>>20)
}

func TestByteStreamStalledReadsBoundedRSS(t *testing.T) {
	// why: 300 Read streams of a 4 MiB blob that nobody consumed added 1 GB
	// to castd (issue #12 item 14); memory must stay within the read
	// buffer limit plus a margin for per-stream bookkeeping.
	const readers, limit, margin = 300, 32 << 20, 48 << 20
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(fmt.Sprintf("cache:\n  read-buffer-limit: %d\n", limit)))
	conn := dialUnix(t, p.socket)
	b := randomBlob(4 << 20)
	if err := bytestreamWrite(ctxTimeout(t, time.Minute), conn, b); err != nil {
		t.Fatal(err)
	}
	if got, err := readBlob(ctxTimeout(t, time.Minute), conn, b.d); err != nil || len(got) != len(b.data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
	baseRSS := rss(t, p.pid())

	// A fixed 64 KiB stream window (no BDP growth): castd can send a reader
	// that does not read only 64 KiB, the way a stalled Bazel would.
	stalled, err := grpc.NewClient("unix:"+p.socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range readers {
		if _, err := bspb.NewByteStreamClient(stalled).Read(ctx, &bspb.ReadRequest{
			ResourceName: fmt.Sprintf("blobs/%s/%d", b.d.GetHash(), b.d.GetSizeBytes())}); err != nil {
			t.Fatal(err)
		}
	}
	var held, waiting float64
	if !testutil.Poll(60*time.Second, func() bool {
		text := scrape(t, p.metricsURL())
		held, waiting = metricValue(t, text, "castd_bytestream_read_buffer_bytes"), metricValue(t, text, "castd_bytestream_read_buffer_waiters")
		return held == limit && waiting >= readers-(limit>>20)/2 // a reader holds at most two 1 MiB chunks
	}) {
		t.Fatalf("read buffers hold %v bytes with %v reads waiting; want the limit %d held and the other reads waiting", held, waiting, limit)
	}
	got := rss(t, p.pid())
	bound := int64(limit + margin)
	if raceEnabled {
		bound *= 8 // the race detector's shadow memory
	}
	t.Logf("RSS %d MiB before, %d MiB with %d stalled reads of a 4 MiB blob (%d MiB held in read buffers, %v reads waiting); bound +%d MiB",
		baseRSS>>20, got>>20, readers, int64(held)>>20, waiting, bound>>20)
	if got-baseRSS > bound {
		t.Fatalf("castd grew by %d MiB with %d stalled reads; want at most %d MiB (read-buffer-limit %d MiB plus a margin)", (got-baseRSS)>>20, readers, bound>>20, limit>>20)
	}
	cancel()
	if got, err := readBlob(ctxTimeout(t, time.Minute), conn, b.d); err != nil || len(got) != len(b.data) {
		t.Fatalf("read after the stalled readers left: %d bytes, %v", len(got), err)
	}
}
