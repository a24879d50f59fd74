package compression_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/compression"
)

// mixedSet is a blob mix like a build's: Go sources (text), the Go
// toolchain's binaries (executables) and already-compressed files (PNG,
// gzip), read from GOROOT so that every machine measures the same kind
// of bytes. It returns the blobs, the kind of each, and the bytes of
// each kind.
func mixedSet(b *testing.B) (blobs [][]byte, kindOf []string, kinds map[string]int) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("go env GOROOT: %v", err)
	}
	root := strings.TrimSpace(string(out))
	kinds = map[string]int{}
	add := func(kind, path string, limit int) {
		if kinds[kind] >= limit {
			return
		}
		data, err := os.ReadFile(path)
		if err == nil && len(data) > 0 {
			blobs, kindOf = append(blobs, data), append(kindOf, kind)
			kinds[kind] += len(data)
		}
	}
	_ = filepath.WalkDir(filepath.Join(root, "src"), func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil || d.IsDir():
		case strings.HasSuffix(p, ".go"):
			add("text", p, 32<<20)
		case strings.HasSuffix(p, ".png") || strings.HasSuffix(p, ".gz"):
			add("compressed", p, 8<<20)
		}
		return nil
	})
	for _, tool := range []string{"compile", "link", "vet", "asm"} {
		add("binary", filepath.Join(root, "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH, tool), 64<<20)
	}
	if len(blobs) == 0 {
		b.Skip("no GOROOT sources to measure on")
	}
	return blobs, kindOf, kinds
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkZstdMixed measures castd's zstd level on the mixed set: MB/s
// of uncompressed bytes encoded and decoded, CPU ms per MB, and the
// compressed size as a share of the original, for the whole set and per
// kind of blob.
//
//	go test -run '^$' -bench ZstdMixed -benchtime 3x ./internal/compression/
func BenchmarkZstdMixed(b *testing.B) {
	blobs, kindOf, kinds := mixedSet(b)
	var total, packed int
	packedKind := map[string]int{}
	encoded := make([][]byte, len(blobs))
	for i, blob := range blobs {
		encoded[i] = compression.Encode(repb.Compressor_ZSTD, nil, blob)
		total, packed = total+len(blob), packed+len(encoded[i])
		packedKind[kindOf[i]] += len(encoded[i])
	}
	for kind, n := range kinds {
		b.Logf("%s: %d blobs' %.1f MB compress to %.3f", kind, countKind(kindOf, kind), float64(n)/1e6, float64(packedKind[kind])/float64(n))
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(total))
		cpu := cpuTime()
		for range b.N {
			for _, blob := range blobs {
				compression.Encode(repb.Compressor_ZSTD, nil, blob)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(b.N)/(float64(total)/1e6), "cpu-ms/MB")
		b.ReportMetric(float64(packed)/float64(total), "ratio")
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(total))
		cpu := cpuTime()
		for range b.N {
			for i, z := range encoded {
				if _, err := compression.Decode(repb.Compressor_ZSTD, z, int64(len(blobs[i])), codes.DataLoss); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(b.N)/(float64(total)/1e6), "cpu-ms/MB")
	})
}

func countKind(kindOf []string, kind string) int {
	n := 0
	for _, k := range kindOf {
		if k == kind {
			n++
		}
	}
	return n
}
