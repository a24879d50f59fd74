package store

import (
	"bytes"
	"context"
	"io"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
)

// getEachParallelism bounds the Gets GetEach runs at once.
const getEachParallelism = 32

// GetEach is the generic GetMany of an implementation with no batch path
// of its own, which calls it from its GetMany: each digest of ds is read
// through b.Get, up to 32 at once, into one exactly sized buffer. Entries
// carry their own errors; a reader that ends early is DATA_LOSS.
func GetEach(ctx context.Context, b BasicCAS, ds []digest.Digest) []BlobResult {
	out := make([]BlobResult, len(ds))
	var g errgroup.Group
	g.SetLimit(getEachParallelism)
	for i, d := range ds {
		g.Go(func() error {
			out[i].Data, out[i].Err = readWhole(ctx, b, d)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// readWhole reads d through b.Get into memory. A reader that ends early is
// DATA_LOSS; the store's own errors keep their code.
func readWhole(ctx context.Context, b BasicCAS, d digest.Digest) ([]byte, error) {
	rc, err := b.Get(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, d.Size)
	_, err = io.ReadFull(rc, buf)
	if _, isStatus := status.FromError(err); !isStatus {
		return nil, status.Errorf(codes.DataLoss, "blob %s: %v", d, err)
	}
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// FailAll is the answer of a GetMany whose whole call failed with err:
// n results that each carry err.
func FailAll(n int, err error) []BlobResult {
	out := make([]BlobResult, n)
	for i := range out {
		out[i].Err = err
	}
	return out
}

// WithGenericFastPaths returns b as a CAS whose fast paths are the generic
// fallbacks over b's own methods: GetMany is GetEach, GetWith is Get,
// PutWith is Put and PutBytes is Put from a reader (hints ignored). Use it
// for a CAS that has nothing faster, such as a test double that overrides
// Get or Put: every call then goes through b's methods, never around them.
// Cost: what the fallbacks cost (a goroutine and a buffer per blob of a
// GetMany). Safe for concurrent use when b is.
func WithGenericFastPaths(b BasicCAS) CAS { return genericCAS{b} }

type genericCAS struct{ b BasicCAS }

func (g genericCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return g.b.FindMissing(ctx, ds)
}

func (g genericCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return g.b.Get(ctx, d, offset)
}

func (g genericCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, _ GetHint) (io.ReadCloser, error) {
	return g.b.Get(ctx, d, offset)
}

func (g genericCAS) GetMany(ctx context.Context, ds []digest.Digest) []BlobResult {
	return GetEach(ctx, g.b, ds)
}

func (g genericCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return g.b.Put(ctx, d, r)
}

func (g genericCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, _ PutHint) error {
	return g.b.Put(ctx, d, r)
}

func (g genericCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, _ PutHint) error {
	return g.b.Put(ctx, d, bytes.NewReader(data))
}

// ReadBytes reads the whole small blob d from cas into memory, verified:
// GetMany for one digest. For blobs of bounded size only.
func ReadBytes(ctx context.Context, cas CAS, d digest.Digest) ([]byte, error) {
	r := cas.GetMany(ctx, []digest.Digest{d})[0]
	return r.Data, r.Err
}

// ReadMessage reads the small blob d from cas and decodes it into m (a
// Directory, Tree, Command, Action...). NOT_FOUND and the store's other
// errors pass through; a blob shorter than d says is DATA_LOSS; bytes that
// do not decode as m are INVALID_ARGUMENT, since a client uploaded them.
func ReadMessage(ctx context.Context, cas CAS, d digest.Digest, m proto.Message) error {
	b, err := ReadBytes(ctx, cas, d)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return status.Errorf(codes.InvalidArgument, "blob %s is not a valid %T: %v", d, m, err)
	}
	return nil
}
