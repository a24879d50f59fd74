package disk

import (
	"sync"

	"github.com/castd/castd/pkg/digest"
)

// chunkSize is the unit large uploads are read, hashed and written in.
const chunkSize = 1 << 20

// chunkBufs recycles chunk buffers across uploads.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// pipelinedHasher computes a digest function on its own goroutine, so that hashing
// (about 1.7 GB/s per core) overlaps with reading and writing the file on
// another core. It lends out at most three buffers. Not safe for concurrent
// use; call sum exactly once.
type pipelinedHasher struct {
	todo chan *[]byte // filled chunks, to hash
	free chan *[]byte // hashed chunks, to refill
	done chan []byte
}

func newPipelinedHasher(f digest.Function) *pipelinedHasher {
	p := &pipelinedHasher{todo: make(chan *[]byte, 3), free: make(chan *[]byte, 3), done: make(chan []byte, 1)}
	for range 3 {
		p.free <- chunkBufs.Get().(*[]byte)
	}
	go func() {
		h := f.NewHasher()
		for b := range p.todo {
			h.Write(*b)
			p.free <- b
		}
		p.done <- h.Sum(nil)
	}()
	return p
}

// buffer returns an empty chunk buffer with chunkSize capacity.
func (p *pipelinedHasher) buffer() *[]byte {
	b := <-p.free
	*b = (*b)[:chunkSize]
	return b
}

// hash queues b[:n] for hashing; b goes back to the free list afterwards.
func (p *pipelinedHasher) hash(b *[]byte, n int) {
	*b = (*b)[:n]
	p.todo <- b
}

// sum waits for the raw hash of everything queued and returns the buffers.
func (p *pipelinedHasher) sum() []byte {
	close(p.todo)
	s := <-p.done
	for range 3 {
		b := <-p.free
		*b = (*b)[:chunkSize]
		chunkBufs.Put(b)
	}
	return s
}
