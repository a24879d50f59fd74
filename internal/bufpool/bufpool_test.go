package bufpool

import "testing"

func TestGetLengthAndCapacity(t *testing.T) {
	tests := []struct {
		name, why string
		n, cap    int
	}{
		{"empty", "a zero-length Get is served from the smallest tier", 0, 1 << minShift},
		{"one byte", "sizes below the smallest tier round up to it", 1, 1 << minShift},
		{"exact power", "a power of two fits its own tier", 16 << 10, 16 << 10},
		{"just above", "one byte over a tier takes the next", 16<<10 + 1, 32 << 10},
		{"a frame plus header", "a 1 MiB chunk with its framing fits the 2 MiB tier", 1<<20 + 9, 2 << 20},
		{"largest tier", "a whole 4 MiB batch is pooled", 1 << maxShift, 1 << maxShift},
		{"too large", "beyond the largest tier a buffer is allocated at its size", 1<<maxShift + 1, 1<<maxShift + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			bp := Pool.Get(tc.n)
			if len(*bp) != tc.n || cap(*bp) != tc.cap {
				t.Fatalf("Get(%d): len %d cap %d; want len %d cap %d", tc.n, len(*bp), cap(*bp), tc.n, tc.cap)
			}
			Pool.Put(bp)
		})
	}
}

func TestPutReusesWithoutZeroing(t *testing.T) {
	t.Log("a returned buffer, or a prefix of it, comes back from its tier as it was: not zeroed, which is the point")
	var p pool
	reused := false
	for range 100 { // sync.Pool may drop an item (always possible, often under -race)
		bp := p.Get(5000)
		whole := (*bp)[:cap(*bp)]
		for i := range whole {
			whole[i] = 0xab
		}
		*bp = (*bp)[:10] // gRPC may hand back a prefix
		p.Put(bp)
		got := p.Get(6000)
		if cap(*got) != 8192 {
			t.Fatalf("Get(6000) cap %d; want the 8 KiB tier", cap(*got))
		}
		if (*got)[0] == 0xab && (*got)[5999] == 0xab {
			reused = true
			break
		}
	}
	if !reused {
		t.Fatal("the buffer put back was never handed out again")
	}
}

func TestPutDropsForeignBuffers(t *testing.T) {
	t.Log("buffers that are not a tier's size are dropped, so a tier never hands out one too small")
	var p pool
	for _, c := range []int{100, 3000, 1<<maxShift + 1, 1 << (maxShift + 1)} {
		b := make([]byte, c)
		p.Put(&b)
	}
	for range 10 {
		got := p.Get(3000)
		if cap(*got) != 4096 {
			t.Fatalf("Get(3000) cap %d after foreign Puts; want 4096", cap(*got))
		}
	}
}
