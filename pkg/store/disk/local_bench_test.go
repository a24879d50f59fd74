package disk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

var (
	benchLargeMiB  = flag.Int("store.large-mib", 64, "blob size in MiB for BenchmarkPutLarge/GetLarge")
	benchOpenBlobs = flag.Int("store.open-blobs", 20000, "blobs stored before BenchmarkOpen reopens the store")
)

// smallBlob returns a unique 1-16 KiB blob for sequence number i, built from
// a shared random pool so that generating it costs little.
func smallBlob(pool []byte, i uint64) []byte {
	size := 1<<10 + int(i*7919%(15<<10))
	b := make([]byte, size)
	copy(b, pool[i%uint64(len(pool)-size):])
	binary.LittleEndian.PutUint64(b, i)
	return b
}

func randomPool() []byte {
	b, _ := blob(1<<20, 1)
	return b
}

// BenchmarkPutSmallParallel stores unique 1-16 KiB blobs from GOMAXPROCS*8
// goroutines. The figure includes computing each digest client-side.
func BenchmarkPutSmallParallel(b *testing.B) {
	l := openStore(b, b.TempDir(), disk.Options{})
	pool := randomPool()
	var seq atomic.Uint64
	b.SetParallelism(8)
	b.ResetTimer()
	cpu := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			data := smallBlob(pool, seq.Add(1))
			if err := l.Put(context.Background(), digest.OfBytes(data), bytes.NewReader(data)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blobs/s")
	reportCPU(b, cpu)
}

// BenchmarkGetSmallParallel reads random blobs of 10,000 stored 1-16 KiB ones.
func BenchmarkGetSmallParallel(b *testing.B) {
	l := openStore(b, b.TempDir(), disk.Options{})
	ds := fillSmall(b, l, 10000)
	b.SetParallelism(8)
	b.ResetTimer()
	cpu := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 0))
		for pb.Next() {
			rc, err := l.Get(context.Background(), ds[r.IntN(len(ds))], 0)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				_ = rc.Close()
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blobs/s")
	reportCPU(b, cpu)
}

// BenchmarkFindMissing10k asks about 10,000 digests, half of them stored.
func BenchmarkFindMissing10k(b *testing.B) {
	l := openStore(b, b.TempDir(), disk.Options{})
	ds := fillSmall(b, l, 5000)
	pool := randomPool()
	for i := range 5000 {
		ds = append(ds, digest.OfBytes(smallBlob(pool, uint64(1e9+i))))
	}
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		missing, err := l.FindMissing(context.Background(), ds)
		if err != nil || len(missing) != 5000 {
			b.Fatalf("FindMissing = %d missing, %v", len(missing), err)
		}
	}
	b.ReportMetric(float64(b.N)*10000/b.Elapsed().Seconds(), "digests/s")
	reportCPU(b, cpu)
}

// BenchmarkPutLarge stores one -store.large-mib blob per iteration.
func BenchmarkPutLarge(b *testing.B) {
	l := openStore(b, b.TempDir(), disk.Options{})
	data, _ := blob(*benchLargeMiB<<20, 1)
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		binary.LittleEndian.PutUint64(data, uint64(i))
		d := digest.OfBytes(data)
		b.StartTimer()
		if err := l.Put(context.Background(), d, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkGetLarge reads a -store.large-mib blob end to end (verified).
func BenchmarkGetLarge(b *testing.B) {
	l := openStore(b, b.TempDir(), disk.Options{})
	data, _ := blob(*benchLargeMiB<<20, 2)
	d := put(b, l, data)
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	for b.Loop() {
		rc, err := l.Get(context.Background(), d, 0)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
			b.Fatalf("read %d bytes, %v", n, err)
		}
		_ = rc.Close()
	}
	reportCPU(b, cpu)
}

// BenchmarkOpen reopens a store holding -store.open-blobs blobs and reports
// how long until it serves (Open returns) and until its index is loaded.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fillTiny(b, l, *benchOpenBlobs)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	var ready time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		l, err := disk.Open(dir, disk.Options{})
		if err != nil {
			b.Fatal(err)
		}
		<-l.Ready()
		ready += time.Since(start)
		b.StopTimer()
		if got := l.Stats().Objects; got != int64(*benchOpenBlobs) {
			b.Fatalf("reopened store has %d objects, want %d", got, *benchOpenBlobs)
		}
		_ = l.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(ready.Milliseconds())/float64(b.N), "ms-to-ready")
}

// fillSmall stores n unique small blobs (100 B to 16 KiB) in parallel.
func fillSmall(b *testing.B, l *disk.Store, n int) []digest.Digest {
	b.Helper()
	pool := randomPool()
	ds := make([]digest.Digest, n)
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			data := smallBlob(pool, uint64(i))
			ds[i] = digest.OfBytes(data)
			return l.Put(context.Background(), ds[i], bytes.NewReader(data))
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return ds
}

// cpuTime is the process's user+system CPU time so far. The machine is
// shared, so CPU per operation is a steadier figure than wall-clock rates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// fillTiny stores n unique 64-byte blobs, in parallel batches.
func fillTiny(b *testing.B, l *disk.Store, n int) {
	b.Helper()
	var g errgroup.Group
	g.SetLimit(16)
	for start := 0; start < n; start += 1000 {
		g.Go(func() error {
			for i := start; i < min(start+1000, n); i++ {
				data := make([]byte, 64)
				binary.LittleEndian.PutUint64(data, uint64(i))
				if err := l.Put(context.Background(), digest.OfBytes(data), bytes.NewReader(data)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
