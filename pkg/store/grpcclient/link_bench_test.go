package grpcclient_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/grpcclient"
	"github.com/castd/castd/test/faultproxy"
)

// The blob set of BenchmarkZstdThroughSlowLink: about two thirds text, a
// third incompressible. Small enough that the slowest case (identity at
// 8 MB/s) takes about 2 s per iteration.
const (
	linkTextFiles   = 5 << 19 // Go source files, one blob each (BatchUpdateBlobs/BatchReadBlobs)
	linkTextArchive = 3 << 19 // more Go source, concatenated into one blob (ByteStream)
	linkRandomLarge = 3 << 19 // one random blob (ByteStream)
	linkRandomSmall = 64 << 10
	linkRandomCount = 8 // random blobs of linkRandomSmall (batch)
)

// linkBlobs is the mixed set: Go source files read from GOROOT/src (each
// a blob, plus a concatenation of further ones as one large blob) and
// random bytes (one large blob, several small ones).
func linkBlobs(b *testing.B) (blobs [][]byte, text, random int) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Fatalf("go env GOROOT: %v", err)
	}
	var archive []byte
	_ = filepath.WalkDir(filepath.Join(strings.TrimSpace(string(out)), "src"), func(p string, d fs.DirEntry, err error) error {
		if len(archive) >= linkTextArchive {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 || len(data) > linkTextFiles/8 {
			return nil
		}
		if text < linkTextFiles {
			blobs, text = append(blobs, data), text+len(data)
		} else {
			archive = append(archive, data...)
		}
		return nil
	})
	if len(archive) < linkTextArchive {
		b.Fatalf("GOROOT/src holds %d bytes of Go source; want %d", text+len(archive), linkTextFiles+linkTextArchive)
	}
	blobs, text = append(blobs, archive), text+len(archive)
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) []byte {
		r := make([]byte, n)
		for i := range r {
			r[i] = byte(rng.Uint32())
		}
		return r
	}
	blobs, random = append(blobs, noise(linkRandomLarge)), linkRandomLarge
	for range linkRandomCount {
		blobs, random = append(blobs, noise(linkRandomSmall)), random+linkRandomSmall
	}
	return blobs, text, random
}

// processCPU is the process's user+system CPU time so far (client and
// server both: they share the process and the machine's cores).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkZstdThroughSlowLink writes a mixed blob set to an in-process
// castd REAPI server and reads it back, through a TCP link throttled to
// 8 and 40 MB/s each way (test/faultproxy), with the client's compression
// on (zstd, which the server advertises) and off (identity,
// cache.remotes.compression: off). Each iteration uploads the set with
// PutMany (batches and ByteStream writes, as the push queue does) and
// reads it with GetMany (batch and ByteStream reads, as a fan-out read
// of a missing tree does); every blob starts with the iteration's
// number, so nothing is already on the server.
//
// Reported: MB/s of uncompressed payload for writes and reads, bytes on
// the wire per iteration (both directions, gRPC framing included) as a
// share of the payload, and CPU ms per payload MB (client and server).
//
//	go test -run '^$' -bench ZstdThroughSlowLink -benchtime 3x ./pkg/store/grpcclient/
func BenchmarkZstdThroughSlowLink(b *testing.B) {
	blobs, text, random := linkBlobs(b)
	b.Logf("blob set: %d blobs, %.1f MB text, %.1f MB random", len(blobs), float64(text)/1e6, float64(random)/1e6)
	for _, rate := range []int64{8e6, 40e6, 0} {
		link := fmt.Sprintf("link=%dMBps", rate/1e6)
		if rate == 0 {
			link = "link=unthrottled"
		}
		for _, compress := range []bool{true, false} {
			name := "identity"
			if compress {
				name = "zstd"
			}
			b.Run(link+"/"+name, func(b *testing.B) {
				benchLink(b, blobs, rate, compress)
			})
		}
		if rate > 0 {
			b.Run(link+"/tcp", func(b *testing.B) { benchRawLink(b, rate, 8<<20) })
		}
	}
}

// benchRawLink measures what the throttled link itself carries: n bytes
// of plain TCP, one way, per iteration (MB/s is the link's real rate,
// against which the gRPC cases compare).
func benchRawLink(b *testing.B, rate int64, n int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			var got int
			for got < n && err == nil {
				var k int
				k, err = c.Read(buf)
				got += k
			}
			done <- err
			if err != nil {
				return
			}
		}
	}()
	link, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = link.Close() })
	link.SetMode(faultproxy.Throttle(rate))
	c, err := net.Dial("tcp", link.Addr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	data := make([]byte, n)
	b.SetBytes(int64(n))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

func benchLink(b *testing.B, blobs [][]byte, rate int64, compress bool) {
	srv := testutil.StartREAPI(b, testutil.REAPIOptions{})
	link, err := faultproxy.New(srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = link.Close() })
	ctx := context.Background()
	r, err := grpcclient.Dial(ctx, grpcclient.Config{URL: "grpc://" + link.Addr(), Name: "upstream"}, grpcclient.WithCompression(compress))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	// The connection and the Capabilities (compressors, batch limit) are
	// had before the link slows down and the clock starts.
	if _, err := r.Capabilities(ctx); err != nil {
		b.Fatal(err)
	}
	if rate > 0 {
		link.SetMode(faultproxy.Throttle(rate))
	}
	cas := r.CAS()
	var payload int64
	for _, blob := range blobs {
		payload += int64(len(blob)) + 8
	}
	var writing, reading time.Duration
	before, cpu := link.Stats(), processCPU()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		set := make(map[digest.Digest][]byte, len(blobs))
		ds := make([]digest.Digest, 0, len(blobs))
		for _, blob := range blobs {
			v := append(fmt.Appendf(nil, "%08d", i), blob...) // fresh each iteration
			d := digest.OfBytes(v)
			set[d], ds = v, append(ds, d)
		}
		b.StartTimer()
		start := time.Now()
		if err := r.PutMany(ctx, set); err != nil {
			b.Fatal(err)
		}
		wrote := time.Now()
		for j, res := range cas.GetMany(ctx, ds) {
			if res.Err != nil || len(res.Data) != len(set[ds[j]]) {
				b.Fatalf("read %s: %d bytes, %v", ds[j], len(res.Data), res.Err)
			}
		}
		writing, reading = writing+wrote.Sub(start), reading+time.Since(start)-wrote.Sub(start)
	}
	b.StopTimer()
	after, cpu := link.Stats(), processCPU()-cpu
	total := float64(payload) * float64(b.N)
	wire := float64(after.ToServer-before.ToServer+after.ToClient-before.ToClient) / float64(b.N)
	b.SetBytes(2 * payload)
	b.ReportMetric(total/1e6/writing.Seconds(), "write-MB/s")
	b.ReportMetric(total/1e6/reading.Seconds(), "read-MB/s")
	b.ReportMetric(wire/1e6, "wire-MB/op")
	b.ReportMetric(100*wire/float64(2*payload), "wire-%")
	b.ReportMetric(float64(cpu.Milliseconds())/(2*total/1e6), "cpu-ms/MB")
}
