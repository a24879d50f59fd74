// Package bufpool is the buffer pool castd's gRPC servers and upstream
// clients use for frames and messages: grpc's own tiers, without zeroing a
// buffer on every Get. Everything castd moves is blob data that gRPC
// overwrites in full (a frame read, a message assembled or marshalled)
// before anyone reads it, and zeroing a 1 MiB buffer per message was 5-6%
// of castd's CPU on a cold read (BENCHMARKS.md).
package bufpool

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Tiers are powers of two from 2^minShift to 2^maxShift bytes; a larger
// buffer is allocated and dropped. 4 MiB holds a whole default batch.
const (
	minShift = 8
	maxShift = 22
)

type pool struct {
	tiers [maxShift - minShift + 1]sync.Pool
}

// Pool is the shared pool; it is safe for concurrent use.
var Pool mem.BufferPool = &pool{}

// tierFor is the smallest tier that holds n bytes, or -1.
func tierFor(n int) int {
	shift := minShift
	if n > 1<<minShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxShift {
		return -1
	}
	return shift - minShift
}

// Get returns a buffer of length n whose contents are unspecified.
func (p *pool) Get(n int) *[]byte {
	t := tierFor(n)
	if t < 0 {
		b := make([]byte, n)
		return &b
	}
	if bp, ok := p.tiers[t].Get().(*[]byte); ok {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<(t+minShift))
	return &b
}

// Put takes back a buffer that Get returned (or a prefix of one).
func (p *pool) Put(bp *[]byte) {
	c := cap(*bp)
	if c < 1<<minShift || c > 1<<maxShift || c&(c-1) != 0 {
		return // not one of ours: drop it
	}
	*bp = (*bp)[:0]
	p.tiers[bits.Len(uint(c))-1-minShift].Put(bp)
}
