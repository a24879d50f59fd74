package grpcclient_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

func TestRoundTrip(t *testing.T) {
	ts := startServer(t, serverConfig{})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	cas := r.CAS()
	for i, tc := range []struct {
		name              string
		why               string
		size              int
		offset            int64
		wantPut, wantRead string
	}{
		{"small blob through batch", "small blobs must not pay for a stream each", 1000, 0, "BatchUpdateBlobs", "BatchReadBlobs"},
		{"small blob from an offset", "an offset into a batched blob slices the verified bytes", 1000, 100, "BatchUpdateBlobs", "BatchReadBlobs"},
		{"large blob through bytestream", "blobs over the batch threshold stream in chunks", 5<<20 + 3, 0, "Write", "Read"},
		{"large blob from an offset", "a resumed read asks the remote for the suffix only", 5<<20 + 3, 3<<20 + 7, "Write", "Read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			b, d := randomBlob(uint64(i+1), tc.size)
			puts, reads := ts.count(tc.wantPut), ts.count(tc.wantRead)
			if err := cas.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if missing, _ := ts.mem.FindMissing(context.Background(), []digest.Digest{d}); len(missing) != 0 {
				t.Fatalf("server store lacks %s after Put", d)
			}
			got, err := readAll(cas, d, tc.offset)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, b[tc.offset:]) {
				t.Fatalf("Get returned %d bytes that differ from the %d expected", len(got), len(b)-int(tc.offset))
			}
			if ts.count(tc.wantPut) != puts+1 || ts.count(tc.wantRead) != reads+1 {
				t.Errorf("want one %s and one %s call; server saw %d and %d more", tc.wantPut, tc.wantRead, ts.count(tc.wantPut)-puts, ts.count(tc.wantRead)-reads)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	ts := startServer(t, serverConfig{})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, Name: "cache.example"})
	for _, tc := range []struct {
		name string
		why  string
		size int
	}{
		{"small blob", "NOT_FOUND is the only miss, also from a batch entry", 10},
		{"large blob", "a stream's NOT_FOUND comes back from Get, not from the first Read", 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			_, d := randomBlob(7, tc.size)
			_, err := r.CAS().Get(context.Background(), d, 0)
			if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "upstream cache.example: ") {
				t.Fatalf("Get of a missing blob: %v; want NOT_FOUND naming the remote", err)
			}
		})
	}
}

func TestFindMissingBatches(t *testing.T) {
	t.Log("25,000 digests must go out in a few calls of at most 10,000, never one per digest")
	ts := startServer(t, serverConfig{})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	ds := make([]digest.Digest, 25000)
	present := digest.NewSet()
	for i := range ds {
		b := []byte{byte(i), byte(i >> 8), byte(i >> 16)}
		ds[i] = digest.OfBytes(b)
		if i%2500 == 0 {
			put(t, ts.mem, b)
			present.Add(ds[i])
		}
	}
	missing, err := r.CAS().FindMissing(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	want := digest.NewSet(ds...).Difference(present)
	if got := digest.NewSet(missing...); len(got) != len(missing) || len(got.Difference(want)) != 0 || len(want.Difference(got)) != 0 {
		t.Fatalf("FindMissing returned %d digests, want the %d absent ones, each once", len(missing), len(want))
	}
	if n := ts.count("FindMissingBlobs"); n < 3 || n > 10 {
		t.Errorf("server saw %d FindMissingBlobs calls; want 3 batches", n)
	}
	for _, n := range ts.findSizes {
		if n > 10000 {
			t.Errorf("a FindMissingBlobs call carried %d digests; the limit is 10,000", n)
		}
	}
}

func TestPutManySplitsBatches(t *testing.T) {
	t.Log("batches must fit the remote's advertised max_batch_total_size_bytes; too-large blobs go by ByteStream")
	ts := startServer(t, serverConfig{maxBatch: 64 << 10})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	blobs := map[digest.Digest][]byte{}
	for i := range 100 {
		b, d := randomBlob(uint64(100+i), 4<<10)
		blobs[d] = b
	}
	big, bigD := randomBlob(99, 2<<20)
	blobs[bigD] = big
	if err := r.PutMany(context.Background(), blobs); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	ds := make([]digest.Digest, 0, len(blobs))
	for d := range blobs {
		ds = append(ds, d)
	}
	if missing, _ := ts.mem.FindMissing(context.Background(), ds); len(missing) != 0 {
		t.Fatalf("%d blobs missing on the server after PutMany", len(missing))
	}
	if n := ts.count("BatchUpdateBlobs"); n < 7 || n > 12 {
		t.Errorf("server saw %d BatchUpdateBlobs calls; want about 100 × 4 KiB / 64 KiB = 7", n)
	}
	if n := ts.count("Write"); n != 1 {
		t.Errorf("server saw %d ByteStream writes; want 1 for the 2 MiB blob", n)
	}
}

func TestPutRejectsBadInput(t *testing.T) {
	ts := startServer(t, serverConfig{})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	for _, tc := range []struct {
		name string
		why  string
		size int
	}{
		{"small blob", "a Put must verify like every CAS, before anything is sent", 100},
		{"large blob", "a stream is aborted before finish_write when the bytes do not match", 3 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			b, d := randomBlob(5, tc.size)
			b[len(b)-1] ^= 1
			err := r.CAS().Put(context.Background(), d, bytes.NewReader(b))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Put of mismatching bytes: %v; want INVALID_ARGUMENT", err)
			}
			if missing, _ := ts.mem.FindMissing(context.Background(), []digest.Digest{d}); len(missing) != 1 {
				t.Fatalf("server stored %s from bad bytes", d)
			}
		})
	}
}

// corruptingCAS flips the last byte of every blob it serves.
type corruptingCAS struct{ store.BasicCAS }

func (c corruptingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	r, err := c.BasicCAS.Get(ctx, d, offset)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	b[len(b)-1] ^= 0xff
	return io.NopCloser(bytes.NewReader(b)), nil
}

func TestCorruptUpstream(t *testing.T) {
	ts := startServer(t, serverConfig{wrap: func(c store.CAS) store.CAS { return store.WithGenericFastPaths(corruptingCAS{c}) }})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, Name: "bad.example"})
	for _, tc := range []struct {
		name string
		why  string
		size int
	}{
		{"small blob through batch", "a batch entry is verified before Get returns it", 500},
		{"large blob through bytestream", "a stream is verified as it goes and its final Read fails", 3<<20 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			b, _ := randomBlob(11, tc.size)
			d := put(t, ts.mem, b)
			got, err := readAll(r.CAS(), d, 0)
			if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "upstream bad.example: ") {
				t.Fatalf("reading corrupt bytes: %v; want DATA_LOSS from the client naming the remote", err)
			}
			if len(got) == tc.size {
				t.Fatalf("the whole corrupt blob was returned without an error")
			}
		})
	}
}

func TestInstanceNameOnTheWire(t *testing.T) {
	t.Log("the remote's own instance name is what the server sees, on every service")
	ts := startServer(t, serverConfig{})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, InstanceName: "remote/inst"})
	ctx := context.Background()
	small, smallD := randomBlob(1, 10)
	large, largeD := randomBlob(2, 2<<20)
	for _, b := range [][]byte{small, large} {
		if err := r.CAS().Put(ctx, digest.OfBytes(b), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []digest.Digest{smallD, largeD} {
		if _, err := readAll(r.CAS(), d, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.CAS().FindMissing(ctx, []digest.Digest{smallD}); err != nil {
		t.Fatal(err)
	}
	ar := &repb.ActionResult{ExitCode: 3}
	if err := r.ActionCache().UpdateActionResult(ctx, smallD, ar); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ActionCache().GetActionResult(ctx, smallD); err != nil || got.GetExitCode() != 3 {
		t.Fatalf("GetActionResult = %v, %v; want the stored result", got, err)
	}
	if len(ts.instances) != 1 || !ts.instances["remote/inst"] {
		t.Fatalf("server saw instance names %v; want only remote/inst", ts.instances)
	}
}
