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
	return &writeThroughCAS{CAS: base, primary: primary, name: name}
}

type writeThroughCAS struct {
	store.CAS
	primary store.CAS
	name    string // for errors: the remote's name
}

func (c *writeThroughCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if err := c.CAS.Put(ctx, d, r); err != nil {
		return err
	}
	if d.IsEmpty() {
		return nil
	}
	rc, err := c.CAS.Get(ctx, d, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	return c.wrap(d, c.primary.Put(ctx, d, rc))
}

// PutBytes implements store.BytesPutter: the bytes in memory go to both.
func (c *writeThroughCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte) error {
	if err := store.PutBytes(ctx, c.CAS, d, data); err != nil {
		return err
	}
	if d.IsEmpty() {
		return nil
	}
	return c.wrap(d, store.PutBytes(ctx, c.primary, d, data))
}

// GetBytes and GetMany keep base's read fast paths.
func (c *writeThroughCAS) GetBytes(ctx context.Context, d digest.Digest) ([]byte, error) {
	return store.ReadBytes(ctx, c.CAS, d)
}

// GetMany implements store.BatchGetter over base.
func (c *writeThroughCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return store.GetMany(ctx, c.CAS, ds)
}

// wrap names the storage service in err, keeping its code.
func (c *writeThroughCAS) wrap(d digest.Digest, err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	return status.Errorf(st.Code(), "cache.storage-service %s: storing %s: %s", c.name, d, st.Message())
}
