package integration_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	bspb "google.golang.org/genproto/googleapis/bytestream"
)

// BenchmarkPeakRSSStreaming measures castd's peak resident memory (VmHWM)
// while 4 clients each upload one blob and download another at the same
// time, over the Unix socket. The blob size is 1 GiB with
// CASTD_BENCH_LARGE=1 (the figure in BENCHMARKS.md), 64 MiB otherwise.
// Client data is generated on the fly: neither side holds a blob in memory.
func BenchmarkPeakRSSStreaming(b *testing.B) {
	size := int64(64 << 20)
	if os.Getenv("CASTD_BENCH_LARGE") == "1" {
		size = 1 << 30
	}
	s := startSidecar(b)
	conn, err := dialLoad(s.socket)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	bs := bspb.NewByteStreamClient(conn)
	ctx := context.Background()
	const clients = 4
	readBlobs := make([]string, clients)
	for i := range readBlobs { // the blobs the clients will download
		if readBlobs[i], err = streamUpload(ctx, bs, uint64(100+i), size); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		g, gctx := errgroup.WithContext(ctx)
		for i := range clients {
			g.Go(func() error {
				_, err := streamUpload(gctx, bs, rand.Uint64(), size)
				return err
			})
			g.Go(func() error { return streamDownload(gctx, bs, readBlobs[i], size) })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(2 * clients * size)
	hwm, err := peakRSS(s.pid())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(hwm)/(1<<20), "castd-peak-RSS-MiB")
}

// seededReader yields size pseudo-random bytes from seed, repeatably.
func seededReader(seed uint64, size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(seedBytes(seed)), size)
}

func seedBytes(seed uint64) (s [32]byte) {
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

// streamUpload writes the seeded blob with ByteStream in 1 MiB chunks and
// returns its "hash/size"; it hashes in a first pass so nothing is buffered.
func streamUpload(ctx context.Context, bs bspb.ByteStreamClient, seed uint64, size int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, seededReader(seed, size)); err != nil {
		return "", err
	}
	d := hex.EncodeToString(h.Sum(nil)) + "/" + strconv.FormatInt(size, 10)
	w, err := bs.Write(ctx)
	if err != nil {
		return "", err
	}
	r, buf, off := seededReader(seed, size), make([]byte, 1<<20), int64(0)
	for {
		n, rerr := io.ReadFull(r, buf)
		last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		req := &bspb.WriteRequest{WriteOffset: off, Data: buf[:n], FinishWrite: last}
		if off == 0 {
			req.ResourceName = "uploads/" + uuid.NewString() + "/blobs/" + d
		}
		if err := w.Send(req); err != nil {
			break // the server ended the stream; CloseAndRecv says why
		}
		off += int64(n)
		if last {
			break
		}
	}
	resp, err := w.CloseAndRecv()
	if err != nil {
		return "", err
	}
	if resp.GetCommittedSize() != size {
		return "", fmt.Errorf("committed %d of %d", resp.GetCommittedSize(), size)
	}
	return d, nil
}

// streamDownload reads the blob d and checks its length.
func streamDownload(ctx context.Context, bs bspb.ByteStreamClient, d string, size int64) error {
	r, err := bs.Read(ctx, &bspb.ReadRequest{ResourceName: "blobs/" + d})
	if err != nil {
		return err
	}
	var got int64
	for {
		resp, err := r.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		got += int64(len(resp.GetData()))
	}
	if got != size {
		return fmt.Errorf("read %d of %d bytes", got, size)
	}
	return nil
}

// peakRSS returns a process's VmHWM in bytes.
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}
