package grpcservers_test

// Benchmarks run a real castd gRPC server on a Unix socket over the real
// local store, with clients on separate connections. Run them with:
//
//	go test ./pkg/proxy/ -run '^$' -bench . -benchtime 3s
//
// CASTD_BENCH_LARGE=1 makes the ByteStream benchmarks use 256 MiB blobs.

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

const benchClients = 8

// benchEnv is a castd server on a Unix socket and one connection per client.
type benchEnv struct {
	conns []*grpc.ClientConn
	st    *disk.Store
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	dir, err := os.MkdirTemp("", "castd-bench") // short: socket paths are limited
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	st, err := disk.Open(filepath.Join(dir, "store"), disk.Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv := grpcservers.NewServer(grpcservers.NewStaticBackend(st, func(instance string) store.ActionCache {
		return store.NewCompletenessCheckingActionCache(st.ActionCache(instance), st)
	}), grpcservers.Options{Spooler: st}) // as castd wires it
	sock := filepath.Join(dir, "castd.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(func() { srv.Stop(); st.Close() })
	e := &benchEnv{st: st}
	for range benchClients {
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(16<<20),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		e.conns = append(e.conns, conn)
	}
	return e
}

// run calls op b.N times spread over clients goroutines (one connection
// each) and returns the elapsed time.
func (e *benchEnv) run(b *testing.B, clients int, op func(conn *grpc.ClientConn, i int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				if err := op(e.conns[c%len(e.conns)], i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	return time.Since(start)
}

// blobSource hands out distinct small blobs as slices of one random buffer,
// so that preparing many requests costs hashing but little memory.
type blobSource struct {
	buf []byte
	rng *rand.Rand
}

func newBlobSource(seed uint64) *blobSource {
	rng := rand.New(rand.NewPCG(seed, 1))
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	return &blobSource{buf: buf, rng: rng}
}

// next returns a blob of 1-16 KiB.
func (s *blobSource) next() (digest.Digest, []byte) {
	n := 1<<10 + s.rng.IntN(15<<10+1)
	off := s.rng.IntN(len(s.buf) - n)
	b := s.buf[off : off+n]
	return digest.OfBytes(b), b
}

func (s *blobSource) batch(n int) *repb.BatchUpdateBlobsRequest {
	req := &repb.BatchUpdateBlobsRequest{}
	for range n {
		d, b := s.next()
		req.Requests = append(req.Requests, &repb.BatchUpdateBlobsRequest_Request{Digest: d.Proto(), Data: b})
	}
	return req
}

func checkBatch(resp *repb.BatchUpdateBlobsResponse, err error) error {
	if err != nil {
		return err
	}
	for _, r := range resp.GetResponses() {
		if r.GetStatus().GetCode() != 0 {
			return errFromStatus(r.GetStatus().GetMessage())
		}
	}
	return nil
}

type errFromStatus string

func (e errFromStatus) Error() string { return string(e) }

func BenchmarkBatchUpdateBlobs(b *testing.B) {
	e := newBenchEnv(b)
	src := newBlobSource(1)
	reqs := make([]*repb.BatchUpdateBlobsRequest, b.N)
	for i := range reqs {
		reqs[i] = src.batch(100)
	}
	cpu := cpuTime()
	elapsed := e.run(b, benchClients, func(conn *grpc.ClientConn, i int) error {
		return checkBatch(repb.NewContentAddressableStorageClient(conn).BatchUpdateBlobs(context.Background(), reqs[i]))
	})
	reportBlobs(b, b.N*100, elapsed, cpu)
}

// preload stores n small blobs and returns their digests.
func (e *benchEnv) preload(b *testing.B, n int) []*repb.Digest {
	b.Helper()
	src := newBlobSource(2)
	cas := repb.NewContentAddressableStorageClient(e.conns[0])
	var ds []*repb.Digest
	for len(ds) < n {
		req := src.batch(min(100, n-len(ds)))
		if err := checkBatch(cas.BatchUpdateBlobs(context.Background(), req)); err != nil {
			b.Fatal(err)
		}
		for _, r := range req.Requests {
			ds = append(ds, r.Digest)
		}
	}
	return ds
}

func BenchmarkBatchReadBlobs(b *testing.B) {
	e := newBenchEnv(b)
	ds := e.preload(b, 10000)
	cpu := cpuTime()
	elapsed := e.run(b, benchClients, func(conn *grpc.ClientConn, i int) error {
		start := (i * 100) % (len(ds) - 100)
		resp, err := repb.NewContentAddressableStorageClient(conn).BatchReadBlobs(context.Background(),
			&repb.BatchReadBlobsRequest{Digests: ds[start : start+100]})
		if err == nil && resp.GetResponses()[99].GetStatus().GetCode() != 0 {
			err = errFromStatus(resp.GetResponses()[99].GetStatus().GetMessage())
		}
		return err
	})
	reportBlobs(b, b.N*100, elapsed, cpu)
}

// reportBlobs reports the rate and the CPU time (client and server, this
// process) per blob since cpu. The machine is shared, so CPU per blob is a
// steadier figure than the rate.
func reportBlobs(b *testing.B, blobs int, elapsed, cpu time.Duration) {
	b.ReportMetric(float64(blobs)/elapsed.Seconds(), "blobs/s")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(blobs), "cpu-µs/blob")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkFindMissingBlobs(b *testing.B) {
	e := newBenchEnv(b)
	ds := e.preload(b, 5000)
	for i := range 5000 {
		ds = append(ds, digest.OfBytes([]byte{byte(i), byte(i >> 8), 'x'}).Proto())
	}
	elapsed := e.run(b, benchClients, func(conn *grpc.ClientConn, _ int) error {
		resp, err := repb.NewContentAddressableStorageClient(conn).FindMissingBlobs(context.Background(),
			&repb.FindMissingBlobsRequest{BlobDigests: ds})
		if err == nil && len(resp.GetMissingBlobDigests()) != 5000 {
			err = errFromStatus("wrong number of missing blobs")
		}
		return err
	})
	b.ReportMetric(float64(b.N*len(ds))/elapsed.Seconds(), "digests/s")
}
