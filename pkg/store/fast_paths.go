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

// GetMany reads ds from cas with one GetMany call when cas offers
// BatchGetter, else with GetEach. Decorators that wrap a CAS use it to pass
// batches on without hiding the fast path of what they wrap.
func GetMany(ctx context.Context, cas CAS, ds []digest.Digest) []BlobResult {
	if bg, ok := cas.(BatchGetter); ok {
		return bg.GetMany(ctx, ds)
	}
	return GetEach(ctx, cas, ds)
}

// GetEach reads each digest of ds through cas.Get, up to 32 at once, each
// into one exactly sized buffer. Entries carry their own errors.
func GetEach(ctx context.Context, cas CAS, ds []digest.Digest) []BlobResult {
	out := make([]BlobResult, len(ds))
	var g errgroup.Group
	g.SetLimit(getEachParallelism)
	for i, d := range ds {
		g.Go(func() error {
			out[i].Data, out[i].Err = ReadBytes(ctx, cas, d)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// ReadBytes reads the whole blob d from cas into memory: GetBytes when cas
// offers BytesGetter, else Get. A reader that ends early is DATA_LOSS; the
// store's own errors keep their code. For small blobs only.
func ReadBytes(ctx context.Context, cas CAS, d digest.Digest) ([]byte, error) {
	if bg, ok := cas.(BytesGetter); ok {
		return bg.GetBytes(ctx, d)
	}
	rc, err := cas.Get(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, d.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.DataLoss, "blob %s: %v", d, err)
	}
	return buf, nil
}

// PutBytes stores data under d in cas: PutBytes when cas offers
// BytesPutter (no copy), else Put from a reader.
func PutBytes(ctx context.Context, cas CAS, d digest.Digest, data []byte) error {
	if bp, ok := cas.(BytesPutter); ok {
		return bp.PutBytes(ctx, d, data)
	}
	return cas.Put(ctx, d, bytes.NewReader(data))
}

// PutVerifiedBytes stores data, already checked against d's SHA-256 by the
// caller (see VerifiedBytesPutter), under d in cas without hashing it again
// when cas offers that; otherwise it is PutBytes.
func PutVerifiedBytes(ctx context.Context, cas CAS, d digest.Digest, data []byte) error {
	if vp, ok := cas.(VerifiedBytesPutter); ok {
		return vp.PutVerifiedBytes(ctx, d, data)
	}
	return PutBytes(ctx, cas, d, data)
}

// PutUncached stores r under d in cas, keeping it out of the page cache
// when cas offers that (see UncachedPutter); otherwise it is Put.
func PutUncached(ctx context.Context, cas CAS, d digest.Digest, r io.Reader) error {
	if up, ok := cas.(UncachedPutter); ok {
		return up.PutUncached(ctx, d, r)
	}
	return cas.Put(ctx, d, r)
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
