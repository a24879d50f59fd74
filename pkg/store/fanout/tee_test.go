package fanout_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// teeChunk is how many bytes a chunkyCAS reader yields per Read.
const teeChunk = 1 << 10

// chunkyCAS serves base's blobs teeChunk bytes per Read, like a remote
// stream. With gate set, it stops after the first chunk until gate is
// closed; with failAfter set, the stream breaks (UNAVAILABLE) after that
// many bytes.
type chunkyCAS struct {
	store.BasicCAS
	gate      chan struct{}
	failAfter int
}

func (c chunkyCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := c.BasicCAS.Get(ctx, d, offset)
	if err != nil {
		return nil, err
	}
	return &chunkyReader{ReadCloser: rc, c: c}, nil
}

type chunkyReader struct {
	io.ReadCloser
	c    chunkyCAS
	read int
}

func (r *chunkyReader) Read(p []byte) (int, error) {
	if r.read > 0 && r.c.gate != nil {
		<-r.c.gate
	}
	if r.c.failAfter > 0 && r.read >= r.c.failAfter {
		return 0, status.Error(codes.Unavailable, "stream broke")
	}
	n, err := r.ReadCloser.Read(p[:min(len(p), teeChunk)])
	r.read += n
	return n, err
}

// bigBlob returns n pseudo-random bytes, many chunks long, and a memory
// store holding them.
func bigBlob(t *testing.T, n int) (digest.Digest, []byte, *store.Memory) {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	m := store.NewMemory()
	d := digest.OfBytes(b)
	if err := m.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d, b, m
}

func TestTeeStreamsBeforeTheDownloadEnds(t *testing.T) {
	t.Log("a cold read's first bytes reach the client while the remote is still sending, and the blob is stored")
	d, b, remote := bigBlob(t, 64*teeChunk)
	gate := make(chan struct{})
	local := store.NewMemory()
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: remote, gate: gate})}}, fanout.Options{})
	rc, err := c.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, teeChunk)
	n, err := rc.Read(first)
	if err != nil || n == 0 || !bytes.Equal(first[:n], b[:n]) {
		t.Fatalf("first Read: %d bytes, %v (a prefix of the blob: %v)", n, err, bytes.Equal(first[:n], b[:n]))
	}
	close(gate) // the remote only goes on once the client had its first bytes
	rest, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(rest, b[n:]) {
		t.Fatalf("rest: %v (bytes equal: %v)", err, bytes.Equal(rest, b[n:]))
	}
	rc.Close()
	if !has(t, local, d) {
		t.Error("the blob was not stored locally")
	}
}

func TestTeeBadStream(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		first     func(store.CAS) store.BasicCAS
		wantCode  codes.Code
	}{
		{"corrupt remote", "bad bytes end the read in DATA_LOSS before the client has them all; the next read gets the next remote's copy",
			func(m store.CAS) store.BasicCAS { return chunkyCAS{BasicCAS: corruptCAS{m}} }, codes.DataLoss},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			d, b, remote := bigBlob(t, 64*teeChunk)
			r1 := &countingCAS{BasicCAS: store.WithGenericFastPaths(tc.first(remote)), name: "r1", log: &callLog{}}
			local := store.NewMemory()
			c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(r1)}, {Name: "r2", CAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: remote})}}, fanout.Options{})
			got, err := readAll(context.Background(), c, d, 0)
			if status.Code(err) != tc.wantCode || len(got) >= len(b) {
				t.Fatalf("first read: %d of %d bytes, %v; want fewer bytes and %s", len(got), len(b), err, tc.wantCode)
			}
			got, err = readAll(context.Background(), c, d, 0)
			if err != nil || got != string(b) {
				t.Fatalf("second read: %d bytes, %v; want the blob", len(got), err)
			}
			if n := r1.gets.Load(); n != 1 {
				t.Errorf("r1 Gets = %d, want 1 (the second read must not go back to it)", n)
			}
			if stored, err := readAll(context.Background(), local, d, 0); err != nil || stored != string(b) {
				t.Errorf("local copy: %v (correct: %v)", err, stored == string(b))
			}
		})
	}
}

func TestTeeCorruptOnlyRemote(t *testing.T) {
	t.Log("with no good copy anywhere, the read ends in DATA_LOSS and nothing is stored")
	d, b, remote := bigBlob(t, 64*teeChunk)
	local := store.NewMemory()
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(chunkyCAS{BasicCAS: corruptCAS{remote}})}}, fanout.Options{})
	got, err := readAll(context.Background(), c, d, 0)
	if status.Code(err) != codes.DataLoss || len(got) >= len(b) {
		t.Fatalf("read: %d of %d bytes, %v; want fewer bytes and DATA_LOSS", len(got), len(b), err)
	}
	// The second read either joins the first fetch (NOT_FOUND: no good copy)
	// or, once it is over, tees a new one that ends like the first.
	if _, err := readAll(context.Background(), c, d, 0); status.Code(err) != codes.DataLoss && status.Code(err) != codes.NotFound {
		t.Errorf("second read: %v; want DATA_LOSS or NOT_FOUND (the bad copy was not kept)", err)
	}
	if has(t, local, d) {
		t.Error("bad bytes were stored")
	}
}
