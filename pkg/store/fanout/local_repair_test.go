package fanout_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"

	"github.com/castd/castd/internal/testutil"

	"github.com/castd/castd/pkg/store/disk"
)

const mib = 1 << 20

// remoteHas is what the one remote of a test holds.
type remoteHas int

const (
	hasIt    remoteHas = iota // the blob
	lacksIt                   // nothing
	noRemote                  // there is no remote
)

func TestGetCompletesFromRemoteWhenLocalCopyIsCorrupt(t *testing.T) {
	data := randomBytes(3*mib, 41)
	d := digest.OfBytes(data)
	for _, tc := range []struct {
		name     string
		remote   remoteHas
		flip     int64 // the byte flipped in the stored file
		offset   int64
		wantCode codes.Code
		wantN    int // bytes served when the read fails
	}{
		// The middle chunk is bad: the first MiB comes from local, the
		// rest from the remote, on one stream, without an error.
		{"bad middle chunk, remote has it", hasIt, mib + mib/2, 0, codes.OK, 0},
		// The first chunk is bad: nothing local is served.
		{"bad first chunk, remote has it", hasIt, 10, 0, codes.OK, 0},
		// A resumed read past the start, failing at once.
		{"offset read into the bad chunk, remote has it", hasIt, mib + mib/2, mib + 100, codes.OK, 0},
		// Nobody has it and nothing went out: a plain miss.
		{"bad first chunk, no remote has it", lacksIt, 10, 0, codes.NotFound, 0},
		// Nobody has it, the first MiB went out: the stream cannot turn
		// into a miss any more.
		{"bad middle chunk, no remote has it", lacksIt, mib + mib/2, 0, codes.DataLoss, mib},
		// No remote configured at all: the same rules.
		{"bad first chunk, no remote configured", noRemote, 10, 0, codes.NotFound, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: a read must never fail because the local copy is bad
			// while a remote in the pull order has the blob.
			dir := t.TempDir()
			local, err := disk.Open(dir, disk.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = local.Close() })
			ctx := context.Background()
			if err := local.Put(ctx, d, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			remote := store.NewMemory()
			if tc.remote == hasIt {
				if err := remote.Put(ctx, d, bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
			}
			testutil.FlipByte(t, blobFile(dir, d), tc.flip)
			tiers := []fanout.Tier{{Name: "r1", CAS: remote}}
			if tc.remote == noRemote {
				tiers = nil
			}
			c := fanout.NewCAS(local, tiers, fanout.Options{})

			rc, err := c.Get(ctx, d, tc.offset)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, err := readChunks(rc, mib)
			_ = rc.Close()
			if status.Code(err) != tc.wantCode {
				t.Fatalf("read = %d bytes, %v; want %v", len(got), err, tc.wantCode)
			}
			if tc.wantCode != codes.OK {
				if !bytes.Equal(got, data[:tc.wantN]) {
					t.Fatalf("served %d bytes before the error; want the %d good ones", len(got), tc.wantN)
				}
				return
			}
			if !bytes.Equal(got, data[tc.offset:]) {
				t.Fatalf("read %d bytes that differ from the blob's %d", len(got), len(data)-int(tc.offset))
			}
			// The local copy was repaired by the verified fetch.
			lrc, err := local.Get(ctx, d, 0)
			if err != nil {
				t.Fatalf("local copy after the read: %v", err)
			}
			defer lrc.Close()
			if again, err := io.ReadAll(lrc); err != nil || !bytes.Equal(again, data) {
				t.Fatalf("local copy after the read: %d bytes, %v", len(again), err)
			}
		})
	}
}

// readChunks reads r to the end n bytes at a time, as the ByteStream
// handler does, returning what was served and the error that ended it.
func readChunks(r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		m, err := io.ReadFull(r, buf)
		out = append(out, buf[:m]...)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// blobFile is where the local store in dir keeps the large blob d (its
// documented layout: dir/cas/<first hash byte>/<hash>-<size>).
func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "cas", d.Hash[:2], d.Hash+"-"+strconv.FormatInt(d.Size, 10))
}

func TestGetDoesNotRepairAfterUnverifiedBytes(t *testing.T) {
	// Why: a local reader whose DATA_LOSS comes after it returned bytes it
	// had not verified (a file stored before chunk sums) may have served
	// bad ones; completing that stream from a remote would hand the client
	// a whole blob with bad bytes in it and no error.
	data := randomBytes(2*mib, 42)
	d := digest.OfBytes(data)
	remote := store.NewMemory()
	if err := remote.Put(context.Background(), d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c := fanout.NewCAS(store.WithGenericFastPaths(unverifiedLossCAS{store.NewMemory(), data[:mib]}), []fanout.Tier{{Name: "r1", CAS: remote}}, fanout.Options{})
	rc, err := c.Get(context.Background(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := readChunks(rc, mib)
	if status.Code(err) != codes.DataLoss || len(got) != mib {
		t.Fatalf("read = %d bytes, %v; want the %d bytes served and then DATA_LOSS", len(got), err, mib)
	}
}

// unverifiedLossCAS is a local store that "has" every blob and serves
// prefix, then fails with a plain DATA_LOSS.
type unverifiedLossCAS struct {
	store.BasicCAS
	prefix []byte
}

func (u unverifiedLossCAS) Get(context.Context, digest.Digest, int64) (io.ReadCloser, error) {
	return io.NopCloser(io.MultiReader(bytes.NewReader(u.prefix), failingReader{})), nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) {
	return 0, status.Error(codes.DataLoss, "local store: stored bytes are corrupt")
}
