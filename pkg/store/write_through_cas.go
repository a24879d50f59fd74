package store

import (
	"context"
	"io"

	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// NewWriteThroughCAS returns base whose writes, by every write method,
// also store the blob on primary before they return. Use it for a primary
// store of which base is the cache (cache.storage-service, as BuildStream
// treats it). A write is acknowledged only once primary has it; primary's
// failure is returned with its code, prefixed by name (which names
// primary). base is written first (it verifies the bytes); a stream is
// then read back from base to primary, bytes in memory go to both. Reads
// pass through to base. Cost per write: one upload to primary, even for a
// blob base already held. A primary that does not take the blob's digest
// function (IsUnsupportedFunction) is skipped for that blob: the write
// succeeds with base alone, since no client of that function can read it
// from primary either. Safe for concurrent use.
func NewWriteThroughCAS(base, primary CAS, name string) CAS {
	return &writeThroughCAS{base: base, primary: primary, name: name}
}

type writeThroughCAS struct {
	base    CAS
	primary CAS
	name    string // for errors: names primary
}

// Reads pass through to base, fast paths included.
func (c *writeThroughCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return c.base.FindMissing(ctx, ds)
}

func (c *writeThroughCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.base.Get(ctx, d, offset)
}

func (c *writeThroughCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint GetHint) (io.ReadCloser, error) {
	return c.base.GetWith(ctx, d, offset, hint)
}

func (c *writeThroughCAS) GetMany(ctx context.Context, ds []digest.Digest) []BlobResult {
	return c.base.GetMany(ctx, ds)
}

func (c *writeThroughCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, PutHint{})
}

// PutWith stores the stream in base (with the hint), then streams the
// stored blob from base to primary.
func (c *writeThroughCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint PutHint) error {
	if err := c.base.PutWith(ctx, d, r, hint); err != nil {
		return err
	}
	if d.IsEmpty() {
		return nil
	}
	rc, err := c.base.Get(ctx, d, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	return c.wrap(d, c.primary.Put(ctx, d, rc))
}

// PutBytes hands the bytes in memory to both.
func (c *writeThroughCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint PutHint) error {
	if err := c.base.PutBytes(ctx, d, data, hint); err != nil {
		return err
	}
	if d.IsEmpty() {
		return nil
	}
	return c.wrap(d, c.primary.PutBytes(ctx, d, data, hint))
}

// wrap names primary in err, keeping its code; a primary that does not
// take d's function is no failure (see NewWriteThroughCAS).
func (c *writeThroughCAS) wrap(d digest.Digest, err error) error {
	if err == nil || IsUnsupportedFunction(err) {
		return nil
	}
	st := status.Convert(err)
	return status.Errorf(st.Code(), "%s: storing %s: %s", c.name, d, st.Message())
}
