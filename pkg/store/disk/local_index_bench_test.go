package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"runtime"
	"testing"

	"github.com/castd/castd/pkg/digest"
)

// BenchmarkIndexMemory reports the heap the in-memory index costs per
// stored blob (keys, entries and map overhead), for 1<<20 SHA-256 blobs:
// go test -run '^$' -bench IndexMemory -benchtime 1x ./pkg/store/disk
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1 << 20
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix := newIndex()
		var buf [8]byte
		for i := range n {
			binary.LittleEndian.PutUint64(buf[:], uint64(i))
			sum := sha256.Sum256(buf[:])
			k, ok := keyOf(digest.Digest{Hash: hex.EncodeToString(sum[:]), Size: int64(i)})
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
