package proxy

import (
	"context"
	"io"

	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// newWriteThroughCAS returns base whose Puts also store the blob on
// primary before they return: cache.storage-service, which BuildStream
// treats as the primary store (the local store is its cache). A write is
// acknowledged only once primary has it; primary's failure is returned
// with its code, naming the remote. base is written first (it verifies
// the bytes); the blob is then streamed from base to primary. Reads pass
// through to base. Cost per Put: one upload to primary, even for a blob
// base already held. Safe for concurrent use.
func newWriteThroughCAS(base, primary store.CAS, name string) store.CAS {
	return &writeThroughCAS{base: base, primary: primary, name: name}
}

type writeThroughCAS struct {
	base    store.CAS
	primary store.CAS
	name    string // for errors: the remote's name
}

// Reads pass through to base, fast paths included.
func (c *writeThroughCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return c.base.FindMissing(ctx, ds)
}

func (c *writeThroughCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.base.Get(ctx, d, offset)
}

func (c *writeThroughCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	return c.base.GetWith(ctx, d, offset, hint)
}

func (c *writeThroughCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return c.base.GetMany(ctx, ds)
}

func (c *writeThroughCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, store.PutHint{})
}

// PutWith stores the stream in base (with the hint), then streams the
// stored blob from base to primary.
func (c *writeThroughCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
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
func (c *writeThroughCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	if err := c.base.PutBytes(ctx, d, data, hint); err != nil {
		return err
	}
	if d.IsEmpty() {
		return nil
	}
	return c.wrap(d, c.primary.PutBytes(ctx, d, data, hint))
}

// wrap names the storage service in err, keeping its code.
func (c *writeThroughCAS) wrap(d digest.Digest, err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	return status.Errorf(st.Code(), "cache.storage-service %s: storing %s: %s", c.name, d, st.Message())
}
