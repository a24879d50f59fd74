package store_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// sha256OnlyCAS is a memory store standing for a remote whose
// Capabilities list SHA-256 alone: writes of other functions fail with
// UnsupportedFunctionError without reading anything, as the upstream
// client's do.
type sha256OnlyCAS struct {
	mem  *store.Memory
	puts int
}

func (s *sha256OnlyCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return s.mem.FindMissing(ctx, ds)
}

func (s *sha256OnlyCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return s.mem.Get(ctx, d, offset)
}

func (s *sha256OnlyCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	s.puts++
	if d.Func != digest.SHA256 {
		return &store.UnsupportedFunctionError{Func: d.Func, Store: "sha256-only.example"}
	}
	return s.mem.Put(ctx, d, r)
}

func TestWriteThroughSkipsAPrimaryWithoutTheFunction(t *testing.T) {
	// Why: a primary that does not take BLAKE3 cannot hold a BLAKE3 blob,
	// and no BLAKE3 client reads it there; the write succeeds on base
	// alone, while SHA-256 writes still reach the primary.
	ctx := context.Background()
	data := []byte("written through, or not")
	for _, how := range []string{"Put", "PutWith", "PutBytes"} {
		base, primary := store.NewMemory(), &sha256OnlyCAS{mem: store.NewMemory()}
		c := store.NewWriteThroughCAS(base, store.WithGenericFastPaths(primary), "primary.example")
		for _, d := range []digest.Digest{digest.OfBytesIn(digest.BLAKE3, data), digest.OfBytes(data)} {
			var err error
			switch how {
			case "Put":
				err = c.Put(ctx, d, bytes.NewReader(data))
			case "PutWith":
				err = c.PutWith(ctx, d, bytes.NewReader(data), store.PutHint{Uncached: true})
			case "PutBytes":
				err = c.PutBytes(ctx, d, data, store.PutHint{})
			}
			if err != nil {
				t.Errorf("%s %s through a SHA-256-only primary: %v", how, d, err)
			}
			if m, _ := base.FindMissing(ctx, []digest.Digest{d}); len(m) != 0 {
				t.Errorf("%s %s: base lacks it", how, d)
			}
			wantOnPrimary := d.Func == digest.SHA256
			if m, _ := primary.mem.FindMissing(ctx, []digest.Digest{d}); (len(m) == 0) != wantOnPrimary {
				t.Errorf("%s %s: on primary = %v, want %v", how, d, len(m) == 0, wantOnPrimary)
			}
		}
		if primary.puts != 2 {
			t.Errorf("%s: primary was asked %d times, want 2", how, primary.puts)
		}
	}
}

func TestExistenceCachingKeepsFunctionsApart(t *testing.T) {
	// Why: a SHA-256 blob found present says nothing of the BLAKE3 digest
	// with the same hex; the cache must ask base about it and report it
	// missing.
	ctx := context.Background()
	a := name("a")
	base, asked := askedBase(t, "a")
	c := store.NewExistenceCachingCAS(store.WithGenericFastPaths(base), time.Minute, 10, &settableClock{now: time.Unix(0, 0)}, nil)
	if m, err := c.FindMissing(ctx, []digest.Digest{a}); err != nil || len(m) != 0 {
		t.Fatalf("FindMissing(a) = %v, %v", m, err)
	}
	b3 := a
	b3.Func = digest.BLAKE3
	m, err := c.FindMissing(ctx, []digest.Digest{a, b3})
	if err != nil || !slices.Equal(m, []digest.Digest{b3}) {
		t.Errorf("FindMissing(a, blake3 twin of a) = %v, %v; want the twin missing", m, err)
	}
	if got := asked(); len(got) != 2 || !slices.Equal(got[1], []digest.Digest{b3}) {
		t.Errorf("base was asked %v; want the twin asked on its own", got)
	}
}

func TestMissingBlobsKeepTheirFunction(t *testing.T) {
	// Why: a missing BLAKE3 or SHA-512 blob reported by castd or a remote
	// is read back as that digest, not as a SHA-256 one with the same hex.
	b3 := digest.OfBytesIn(digest.BLAKE3, []byte("x"))
	s512 := digest.OfBytesIn(digest.SHA512, []byte("x"))
	err := store.MissingBlobsError("the CAS", []digest.Digest{b3, s512})
	if got := store.MissingBlobsIn(err); !slices.Equal(got, digest.NewSet(b3, s512).Sorted()) {
		t.Errorf("MissingBlobsIn = %v, want %v", got, []digest.Digest{b3, s512})
	}
	// A server that writes "blobs/{hash}/{size}" for a BLAKE3 request.
	plain := status.New(codes.FailedPrecondition, "missing")
	named := digest.OfBytes([]byte("y")) // names its function explicitly
	plain, _ = plain.WithDetails(preconditionFailure("blobs/"+b3.Hash+"/1", "blobs/sha256/"+named.Hash+"/1"))
	got := store.MissingBlobsInFunc(plain.Err(), digest.BLAKE3)
	if want := []digest.Digest{b3, named}; !slices.Equal(got, want) {
		t.Errorf("MissingBlobsInFunc(BLAKE3) = %v, want %v", got, want)
	}
	if got := store.MissingBlobsIn(plain.Err()); got[0].Func != digest.SHA256 {
		t.Errorf("MissingBlobsIn infers %v for a 64-hex subject, want sha256", got[0].Func)
	}
}

// preconditionFailure is a PreconditionFailure with one MISSING violation
// per subject.
func preconditionFailure(subjects ...string) *errdetails.PreconditionFailure {
	pf := &errdetails.PreconditionFailure{}
	for _, s := range subjects {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{Type: "MISSING", Subject: s})
	}
	return pf
}

func TestGenericFastPathsKeepTheFunction(t *testing.T) {
	// Why: the generic batch paths pass each digest on as it is, so a
	// BLAKE3 blob is read and written as BLAKE3 and its SHA-256 twin is
	// not found.
	ctx := context.Background()
	data := []byte("generic")
	d := digest.OfBytesIn(digest.BLAKE3, data)
	sha := d
	sha.Func = digest.SHA256
	c := store.WithGenericFastPaths(&sha256OnlyCAS{mem: store.NewMemory()})
	if err := c.PutBytes(ctx, digest.OfBytes(data), data, store.PutHint{}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutBytes(ctx, d, data, store.PutHint{}); !store.IsUnsupportedFunction(err) {
		t.Errorf("PutBytes of a BLAKE3 blob = %v, want the store's UnsupportedFunctionError", err)
	}
	mem := store.NewMemory()
	g := store.WithGenericFastPaths(&sha256OnlyCAS{mem: mem})
	if err := mem.Put(ctx, d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	res := g.GetMany(ctx, []digest.Digest{d, sha})
	if res[0].Err != nil || !bytes.Equal(res[0].Data, data) {
		t.Errorf("GetMany BLAKE3 blob: %q, %v", res[0].Data, res[0].Err)
	}
	if status.Code(res[1].Err) != codes.NotFound {
		t.Errorf("GetMany of its SHA-256 twin = %v, want NOT_FOUND", res[1].Err)
	}
}
