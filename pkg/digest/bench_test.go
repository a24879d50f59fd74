package digest_test

import (
	"fmt"
	"testing"

	"github.com/castd/castd/pkg/digest"
)

// BenchmarkVerify measures what verifying a blob costs per function: the
// hash of its bytes, written in the 32 KiB pieces a store's copy loop uses.
func BenchmarkVerify(b *testing.B) {
	for _, f := range []digest.Function{digest.SHA256, digest.BLAKE3, digest.SHA512, digest.SHA1} {
		for _, n := range []int{1 << 10, 64 << 10, 4 << 20} {
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			b.Run(fmt.Sprintf("%s/%dKiB", f, n>>10), func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					h := f.NewHasher()
					for off := 0; off < n; off += 32 << 10 {
						h.Write(buf[off:min(off+32<<10, n)])
					}
					_ = h.Sum(nil)
				}
			})
		}
	}
}

// BenchmarkOfBytes measures hashing a blob already in memory (batch
// uploads, small blobs), which castd does without a heap hasher.
func BenchmarkOfBytes(b *testing.B) {
	for _, f := range []digest.Function{digest.SHA256, digest.BLAKE3} {
		for _, n := range []int{1 << 10, 64 << 10} {
			buf := make([]byte, n)
			b.Run(fmt.Sprintf("%s/%dKiB", f, n>>10), func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					_ = digest.OfBytesIn(f, buf)
				}
			})
		}
	}
}
