package grpcclient_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
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
				sc.wrap = func(c store.CAS) store.CAS { return store.WithGenericFastPaths(corruptingCAS{c}) }
			}
			ts := startServer(t, sc)
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
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
			got := r.CAS().GetMany(context.Background(), ds)
			if len(got) != len(ds) {
				t.Fatalf("GetMany answered %d results for %d digests", len(got), len(ds))
			}
			for i, d := range ds {
				checkEntry(t, d, got[i], want[d], tc.wantCode)
				// The fan-out stores a Verified entry without hashing it
				// again: every checked batch entry says so, no failed one.
				switch r := got[i]; {
				case r.Err == nil && batchable(d.Size) && !r.Verified:
					t.Errorf("%s: a checked batch entry is not marked Verified", d)
				case r.Err != nil && r.Verified:
					t.Errorf("%s: failed entry (%v) marked Verified", d, r.Err)
				}
			}
			if calls := ts.count(tc.wantCalls) - before; calls != tc.calls && !(tc.wantMinCal && calls >= tc.calls) {
				t.Errorf("%s calls = %d, want %d", tc.wantCalls, calls, tc.calls)
			}
		})
	}
}

// batchable reports whether a blob of size travels in a batch (default
// limit) rather than through ByteStream.
func batchable(size int64) bool { return size < 2<<20 }

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
	r := dial(t, grpcclient.Config{URL: "grpc://127.0.0.1:1", RetryLimit: 0})
	_, d := randomBlob(1, 10)
	got := r.CAS().GetMany(context.Background(), []digest.Digest{d, d})
	for i, res := range got {
		if status.Code(res.Err) != codes.Unavailable {
			t.Errorf("entry %d: %v, want UNAVAILABLE", i, res.Err)
		}
	}
}

func TestGetManyAnswerShapes(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		reshape   func([]*repb.BatchReadBlobsResponse_Response) []*repb.BatchReadBlobsResponse_Response
		omitted   bool // the last blob asked about is left out of the answer
	}{
		{"another order", "entries are matched by digest, not by position",
			func(rs []*repb.BatchReadBlobsResponse_Response) []*repb.BatchReadBlobsResponse_Response {
				slices.Reverse(rs)
				return rs
			}, false},
		{"an entry left out", "a blob the remote did not answer for is that entry's INTERNAL, the others are served",
			func(rs []*repb.BatchReadBlobsResponse_Response) []*repb.BatchReadBlobsResponse_Response {
				return rs[:len(rs)-1]
			}, true},
		{"an entry not asked for", "an answer for a digest nobody asked about is ignored",
			func(rs []*repb.BatchReadBlobsResponse_Response) []*repb.BatchReadBlobsResponse_Response {
				b, d := randomBlob(77, 50)
				return append([]*repb.BatchReadBlobsResponse_Response{{Digest: d.Proto(), Data: b, Status: &spb.Status{}}}, rs...)
			}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			reshape := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				resp, err := h(ctx, req)
				if br, ok := resp.(*repb.BatchReadBlobsResponse); ok && err == nil {
					br.Responses = tc.reshape(br.Responses)
				}
				return resp, err
			}
			ts := startServer(t, serverConfig{unary: reshape})
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
			var ds []digest.Digest
			want := map[digest.Digest][]byte{}
			for i, n := range []int{100, 200, 300} {
				b, _ := randomBlob(uint64(200+i), n)
				d := put(t, ts.mem, b)
				ds, want[d] = append(ds, d), b
			}
			got := r.CAS().GetMany(context.Background(), ds)
			for i, d := range ds {
				wantCode := codes.OK
				if tc.omitted && i == len(ds)-1 {
					wantCode = codes.Internal
				}
				checkEntry(t, d, got[i], want[d], wantCode)
			}
		})
	}
}
