package grpcclient_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/grpcclient"
)

func TestReadsHonourSmallBatchLimit(t *testing.T) {
	t.Log("a blob under 1 MiB but over the remote's max_batch_total_size_bytes must be read by ByteStream, never by a BatchReadBlobs the remote refuses")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		read func(t *testing.T, r *grpcclient.Remote, d digest.Digest) []byte
	}{
		{"Get", func(t *testing.T, r *grpcclient.Remote, d digest.Digest) []byte {
			rc, err := r.CAS().Get(ctx, d, 0)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("Get: reading: %v", err)
			}
			return b
		}},
		{"GetMany", func(t *testing.T, r *grpcclient.Remote, d digest.Digest) []byte {
			res := r.CAS().GetMany(ctx, []digest.Digest{d})
			if len(res) != 1 || res[0].Err != nil {
				t.Fatalf("GetMany: %+v", res)
			}
			return res[0].Data
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverConfig{maxBatch: 64 << 10})
			want, d := randomBlob(7, 200<<10)
			if err := ts.mem.Put(ctx, d, bytes.NewReader(want)); err != nil {
				t.Fatal(err)
			}
			r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
			if got := tc.read(t, r, d); !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, not the blob's %d", len(got), len(want))
			}
			if n := ts.count("BatchReadBlobs"); n != 0 {
				t.Errorf("server saw %d BatchReadBlobs calls; want 0 (200 KiB > 64 KiB limit)", n)
			}
			if n := ts.count("Read"); n != 1 {
				t.Errorf("server saw %d ByteStream reads; want 1", n)
			}
		})
	}
}

func TestGetManyBatchesFitSmallLimit(t *testing.T) {
	t.Log("GetMany must split small blobs into batches within the remote's limit and stream the large ones")
	ctx := context.Background()
	ts := startServer(t, serverConfig{maxBatch: 64 << 10})
	var ds []digest.Digest
	blobs := map[digest.Digest][]byte{}
	for i := range 40 {
		b, d := randomBlob(uint64(300+i), 4<<10)
		blobs[d], ds = b, append(ds, d)
	}
	for i := range 2 {
		b, d := randomBlob(uint64(400+i), 200<<10)
		blobs[d], ds = b, append(ds, d)
	}
	for d, b := range blobs {
		if err := ts.mem.Put(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	for i, res := range r.CAS().GetMany(ctx, ds) {
		if res.Err != nil || !bytes.Equal(res.Data, blobs[ds[i]]) {
			t.Fatalf("GetMany entry %d (%s): err %v, %d bytes", i, ds[i], res.Err, len(res.Data))
		}
	}
	if n := ts.count("BatchReadBlobs"); n < 3 || n > 5 {
		t.Errorf("server saw %d BatchReadBlobs calls; want about 40 × 4 KiB / 64 KiB = 3", n)
	}
	if n := ts.count("Read"); n != 2 {
		t.Errorf("server saw %d ByteStream reads; want 2 for the 200 KiB blobs", n)
	}
}

func TestPutHonoursSmallBatchLimit(t *testing.T) {
	t.Log("Put and PutMany of a blob over the remote's batch limit (but under 1 MiB) must use ByteStream Write")
	ctx := context.Background()
	ts := startServer(t, serverConfig{maxBatch: 64 << 10})
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr})
	b1, d1 := randomBlob(11, 200<<10)
	if err := r.CAS().Put(ctx, d1, bytes.NewReader(b1)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	b2, d2 := randomBlob(12, 200<<10)
	if err := r.PutMany(ctx, map[digest.Digest][]byte{d2: b2}); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	if missing, _ := ts.mem.FindMissing(ctx, []digest.Digest{d1, d2}); len(missing) != 0 {
		t.Fatalf("%d blobs missing on the server", len(missing))
	}
	if n := ts.count("BatchUpdateBlobs"); n != 0 {
		t.Errorf("server saw %d BatchUpdateBlobs calls; want 0", n)
	}
	if n := ts.count("Write"); n != 2 {
		t.Errorf("server saw %d ByteStream writes; want 2", n)
	}
}
