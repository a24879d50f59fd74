package disk

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"runtime"
	"testing"

	"github.com/castd/castd/pkg/digest"
)

// BenchmarkIndexMemory reports the heap the in-memory index costs per
// stored blob (keys, entries and map overhead), for 1<<20 blobs of one
// function (SHA-256 and BLAKE3 keys are narrow, SHA-512 ones wide):
// go test -run '^$' -bench IndexMemory -benchtime 1x ./pkg/store/disk
func BenchmarkIndexMemory(b *testing.B) {
	for _, f := range []digest.Function{digest.SHA256, digest.BLAKE3, digest.SHA512} {
		b.Run(f.String(), func(b *testing.B) { benchIndexMemory(b, f) })
	}
}

func benchIndexMemory(b *testing.B, f digest.Function) {
	const n = 1 << 20
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix := newIndex()
		var buf [8]byte
		for i := range n {
			binary.LittleEndian.PutUint64(buf[:], uint64(i))
			sum := sha512.Sum512(buf[:])
			h := hex.EncodeToString(sum[:f.HashBytes()])
			k, ok := keyOf(digest.Digest{Hash: h, Size: int64(i), Func: f})
			if !ok {
				b.Fatal("bad key")
			}
			ix.adopt(k, entry{tick: uint64(i), crc: uint32(i), inline: true, pack: 1})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/blob")
		runtime.KeepAlive(ix)
	}
}
