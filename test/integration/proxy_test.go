package integration_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Benchmarks of castd as a proxy: an upstream castd on loopback TCP, a
// workstation castd on a Unix socket in front of it, and a client reading
// the same data directly from the upstream and through the workstation,
// in the same run. Each reports direct and castd throughput and their
// ratio (castd/direct). Run:
//
//	go test ./test/integration -run '^$' -bench BenchmarkProxy -benchtime 3x
//
// CASTD_BENCH_LARGE=1 makes the large read 256 MiB instead of 32 MiB.

// benchPair starts an upstream castd on TCP and a workstation castd that
// uses it; it returns a direct (TCP) and a workstation (Unix) connection.
func benchPair(b *testing.B) (direct, proxied *grpc.ClientConn) {
	b.Helper()
	direct, proxied, _, _ = benchPairProcs(b)
	return direct, proxied
}

// benchPairProcs is benchPair that also returns the two castd processes.
func benchPairProcs(b *testing.B) (direct, proxied *grpc.ClientConn, upstream, workstation *castdProc) {
	b.Helper()
	addr := freePort(b)
	up := newLayout(b)
	upstream = startCastd(b, up, fmt.Sprintf("listen: [unix:%s, grpc://%s]\nstore-dir: %s\nmetrics: \"\"\nlog-level: info\n", up.socket, addr, up.store))
	ws := newLayout(b)
	workstation = startCastd(b, ws, fmt.Sprintf("listen: [unix:%s]\nstore-dir: %s\nmetrics: \"\"\nlog-level: info\nartifacts:\n  servers:\n  - {url: grpc://%s, type: storage, push: false}\n", ws.socket, ws.store, addr))
	return benchDial(b, "passthrough:///"+addr), benchDial(b, "unix:"+ws.socket), upstream, workstation
}

func benchDial(b *testing.B, target string) *grpc.ClientConn {
	b.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

// smallBlobs returns n random blobs of 1-16 KiB.
func smallBlobs(n int) []blob {
	out := make([]blob, n)
	for i := range out {
		out[i] = randomBlob(1024 + rand.IntN(15*1024+1))
	}
	return out
}

// uploadAll stores blobs on conn in batches of about 2 MiB, 8 at once.
func uploadAll(b *testing.B, conn *grpc.ClientConn, blobs []blob) {
	b.Helper()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(8)
	for _, batch := range batches(blobs, 2<<20) {
		g.Go(func() error { return batchUpdate(ctx, conn, batch...) })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}

// readAll reads blobs like a build client: BatchReadBlobs of about 2 MiB,
// 16 calls at once. It fails on any missing blob.
func readAll(conn *grpc.ClientConn, blobs []blob) error {
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(16)
	for _, batch := range batches(blobs, 2<<20) {
		g.Go(func() error {
			req := &repb.BatchReadBlobsRequest{DigestFunction: repb.DigestFunction_SHA256}
			for _, bl := range batch {
				req.Digests = append(req.Digests, bl.d)
			}
			resp, err := repb.NewContentAddressableStorageClient(conn).BatchReadBlobs(ctx, req)
			if err != nil {
				return err
			}
			for _, r := range resp.GetResponses() {
				if err := grpcStatusErr(r.GetStatus().GetCode(), r.GetStatus().GetMessage()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// batches splits blobs into groups of at most limit bytes.
func batches(blobs []blob, limit int) [][]blob {
	var out [][]blob
	var cur []blob
	size := 0
	for _, bl := range blobs {
		if size+len(bl.data) > limit && len(cur) > 0 {
			out, cur, size = append(out, cur), nil, 0
		}
		cur = append(cur, bl)
		size += len(bl.data)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// timed runs f and returns its duration; it fails b on error.
func timed(b *testing.B, f func() error) time.Duration {
	b.Helper()
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// ratios accumulates direct and castd timings over iterations.
type ratios struct {
	bytes         int64
	direct, castd time.Duration

	upstream, workstation *castdProc // set to report CPU use
	directCPU, castdCPU   cpuUse
}

// runDirect and runCastd time one read of each side.
func (r *ratios) runDirect(b *testing.B, f func() error) {
	b.Helper()
	r.direct += r.directCPU.measure(b, r.upstream, r.workstation, f)
}

func (r *ratios) runCastd(b *testing.B, f func() error) {
	b.Helper()
	r.castd += r.castdCPU.measure(b, r.upstream, r.workstation, f)
}

func (r *ratios) report(b *testing.B, unit string, per float64) {
	rate := func(d time.Duration) float64 { return per / d.Seconds() }
	b.ReportMetric(rate(r.direct), "direct-"+unit)
	b.ReportMetric(rate(r.castd), "castd-"+unit)
	b.ReportMetric(r.direct.Seconds()/r.castd.Seconds(), "castd/direct")
	r.directCPU.report(b, "direct", r.bytes)
	r.castdCPU.report(b, "castd", r.bytes)
}

func BenchmarkProxyColdSmall(b *testing.B) {
	direct, proxied, up, ws := benchPairProcs(b)
	r := ratios{upstream: up, workstation: ws}
	for b.Loop() {
		blobs := smallBlobs(10000)
		for _, bl := range blobs {
			r.bytes += int64(len(bl.data))
		}
		b.StopTimer()
		uploadAll(b, direct, blobs)
		b.StartTimer()
		r.runDirect(b, func() error { return readAll(direct, blobs) })
		r.runCastd(b, func() error { return readAll(proxied, blobs) })
	}
	r.report(b, "MB/s", float64(r.bytes)/1e6)
}

func BenchmarkProxyWarmSmall(b *testing.B) {
	direct, proxied, up, ws := benchPairProcs(b)
	blobs := smallBlobs(10000)
	uploadAll(b, direct, blobs)
	if err := readAll(proxied, blobs); err != nil { // now local in castd
		b.Fatal(err)
	}
	r := ratios{upstream: up, workstation: ws}
	for b.Loop() {
		for _, bl := range blobs {
			r.bytes += int64(len(bl.data))
		}
		r.runDirect(b, func() error { return readAll(direct, blobs) })
		r.runCastd(b, func() error { return readAll(proxied, blobs) })
	}
	r.report(b, "MB/s", float64(r.bytes)/1e6)
}

func BenchmarkProxyColdLarge(b *testing.B) {
	size := 32 << 20
	if os.Getenv("CASTD_BENCH_LARGE") == "1" {
		size = 256 << 20
	}
	direct, proxied, up, ws := benchPairProcs(b)
	r := ratios{upstream: up, workstation: ws}
	for b.Loop() {
		bl := randomBlob(size)
		r.bytes += int64(size)
		b.StopTimer()
		if err := bytestreamWrite(context.Background(), direct, bl); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r.runDirect(b, func() error { _, err := readBlob(context.Background(), direct, bl.d); return err })
		r.runCastd(b, func() error { _, err := readBlob(context.Background(), proxied, bl.d); return err })
	}
	r.report(b, "MB/s", float64(r.bytes)/1e6)
}

func BenchmarkProxyFindMissingPresentUpstream(b *testing.B) {
	const n = 50000
	direct, proxied := benchPair(b)
	var elapsed time.Duration
	var asked int
	for b.Loop() {
		b.StopTimer()
		blobs := make([]blob, n)
		for i := range blobs {
			blobs[i] = randomBlob(64)
		}
		uploadAll(b, direct, blobs)
		ds := make([]*repb.Digest, n)
		for i, bl := range blobs {
			ds[i] = bl.d
		}
		b.StartTimer()
		elapsed += timed(b, func() error {
			g, ctx := errgroup.WithContext(context.Background())
			for start := 0; start < n; start += 10000 {
				g.Go(func() error {
					missing, err := findMissing(ctx, proxied, ds[start:min(start+10000, n)]...)
					if err == nil && len(missing) > 0 {
						err = fmt.Errorf("%d digests reported missing", len(missing))
					}
					return err
				})
			}
			return g.Wait()
		})
		asked += n
	}
	b.ReportMetric(float64(asked)/elapsed.Seconds(), "digests/s")
}
