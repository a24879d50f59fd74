package upstream_test

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/proxy/upstream"
	"github.com/castd/castd/pkg/store"
)

func TestGetMany(t *testing.T) {
	for _, tc := range []struct {
		name, why  string
		maxBatch   int64
		corrupt    bool
		sizes      []int // blobs stored on the server
		absent     int   // digests asked about that the server lacks
		wantCode   codes.Code
		wantCalls  string
		calls      int
		wantMinCal bool // calls is a minimum
	}{
		{"all in one batch", "many small misses cost one round trip, not one each", 0, false, []int{100, 2000, 30000}, 1, codes.OK, "BatchReadBlobs", 1, false},
		{"split at the batch limit", "a batch never exceeds the remote's advertised limit", 8 << 10, false, []int{3000, 3000, 3000, 3000}, 0, codes.OK, "BatchReadBlobs", 2, true},
		{"large blob through bytestream", "a blob too large for a batch is streamed", 0, false, []int{100, 2<<20 + 5}, 0, codes.OK, "Read", 1, false},
		{"corrupt entries", "each entry is verified; a mismatch is that entry's DATA_LOSS", 0, true, []int{100, 200}, 0, codes.DataLoss, "BatchReadBlobs", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			sc := serverConfig{maxBatch: tc.maxBatch}
			if tc.corrupt {
				sc.wrap = func(c store.CAS) store.CAS { return corruptingCAS{c} }
			}
			ts := startServer(t, sc)
			r := dial(t, upstream.Config{URL: "grpc://" + ts.addr})
			var ds []digest.Digest
			want := map[digest.Digest][]byte{}
			for i, n := range tc.sizes {
				b, _ := randomBlob(uint64(100+i), n)
				d := put(t, ts.mem, b)
				ds, want[d] = append(ds, d), b
			}
			for i := range tc.absent {
				_, d := randomBlob(uint64(900+i), 10)
				ds = append(ds, d)
			}
			ds = append(ds, ds[0]) // a duplicate is answered twice
			before := ts.count(tc.wantCalls)
			got := r.CAS().(store.BatchGetter).GetMany(context.Background(), ds)
			if len(got) != len(ds) {
				t.Fatalf("GetMany answered %d results for %d digests", len(got), len(ds))
			}
			for i, d := range ds {
				checkEntry(t, d, got[i], want[d], tc.wantCode)
			}
			if calls := ts.count(tc.wantCalls) - before; calls != tc.calls && !(tc.wantMinCal && calls >= tc.calls) {
				t.Errorf("%s calls = %d, want %d", tc.wantCalls, calls, tc.calls)
			}
		})
	}
}

// checkEntry checks one GetMany result: want's bytes, NOT_FOUND when want
// is nil, or the error code wantCode.
func checkEntry(t *testing.T, d digest.Digest, r store.BlobResult, want []byte, wantCode codes.Code) {
	t.Helper()
	switch {
	case want == nil && status.Code(r.Err) != codes.NotFound:
		t.Errorf("%s: %v, want NOT_FOUND", d, r.Err)
	case want != nil && status.Code(r.Err) != wantCode:
		t.Errorf("%s: %v, want %s", d, r.Err, wantCode)
	case want != nil && wantCode == codes.OK && !bytes.Equal(r.Data, want):
		t.Errorf("%s: wrong bytes", d)
	}
}

func TestGetManyRemoteDown(t *testing.T) {
	t.Log("a remote that cannot be reached fails every entry, with a code that lets the fan-out move on")
	r := dial(t, upstream.Config{URL: "grpc://127.0.0.1:1", RetryLimit: 0})
	_, d := randomBlob(1, 10)
	got := r.CAS().(store.BatchGetter).GetMany(context.Background(), []digest.Digest{d, d})
	for i, res := range got {
		if status.Code(res.Err) != codes.Unavailable {
			t.Errorf("entry %d: %v, want UNAVAILABLE", i, res.Err)
		}
	}
}
