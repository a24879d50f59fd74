package store

import (
	"container/list"
	"context"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// NewExistenceCachingCAS remembers, for ttl, the digests base reported
// present in FindMissing, and asks base only about the others. Use it in
// front of a remote, whose FindMissing is a round trip; the price is that a
// blob the remote drops is still believed present for up to ttl (a later
// Get then misses and the fan-out moves on). Negative answers are never
// cached: a blob may be uploaded at any moment. At most maxEntries digests
// are remembered; the oldest answer is forgotten first. Reads and writes
// (fast paths included) pass through; a read (Get, GetWith, or an entry
// of GetMany) that finds a blob missing forgets it, and a read that
// fails because the remote is unreachable (UNAVAILABLE, or no answer in
// time) forgets every entry: a down remote's blobs must not be reported
// present; so does every entry while unreachable (if not nil) reports
// true (the fan-out passes the remote's open breaker). clock is any time
// source with Now (a clock.Clock, a test's settable clock). Safe for
// concurrent use; lookups take one mutex per call.
func NewExistenceCachingCAS(base CAS, ttl time.Duration, maxEntries int, clock interface{ Now() time.Time }, unreachable func() bool) CAS {
	return &existenceCachingCAS{
		base:        base,
		ttl:         ttl,
		max:         maxEntries,
		clock:       clock,
		unreachable: unreachable,
		entries:     map[digest.Digest]*list.Element{},
		order:       list.New(),
	}
}

type existenceCachingCAS struct {
	base        CAS
	ttl         time.Duration
	max         int
	clock       interface{ Now() time.Time }
	unreachable func() bool // nil: never known unreachable

	mu      sync.Mutex
	entries map[digest.Digest]*list.Element // values are *existenceEntry
	order   *list.List                      // oldest answer at the front
}

type existenceEntry struct {
	d       digest.Digest
	expires time.Time
}

func (c *existenceCachingCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	if c.unreachable != nil && c.unreachable() {
		c.forgetAll()
	}
	unknown := c.uncached(ds, c.clock.Now())
	if len(unknown) == 0 {
		return nil, nil
	}
	missing, err := c.base.FindMissing(ctx, unknown)
	if err != nil {
		c.failed(ctx, err, nil)
		return nil, err
	}
	c.remember(digest.NewSet(unknown...).Difference(digest.NewSet(missing...)), c.clock.Now().Add(c.ttl))
	return missing, nil
}

// uncached returns the digests of ds without a live entry, each once.
func (c *existenceCachingCAS) uncached(ds []digest.Digest, now time.Time) []digest.Digest {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []digest.Digest
	seen := digest.NewSet()
	for _, d := range ds {
		if seen.Has(d) {
			continue
		}
		seen.Add(d)
		if e, ok := c.entries[d]; ok {
			if now.Before(e.Value.(*existenceEntry).expires) {
				continue
			}
			c.forget(e)
		}
		out = append(out, d)
	}
	return out
}

// remember records present as known until expires, evicting the oldest
// entries beyond the bound.
func (c *existenceCachingCAS) remember(present digest.Set, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range present {
		if e, ok := c.entries[d]; ok {
			c.forget(e)
		}
		c.entries[d] = c.order.PushBack(&existenceEntry{d: d, expires: expires})
	}
	for c.order.Len() > c.max {
		c.forget(c.order.Front())
	}
}

// forget drops e; the caller holds mu.
func (c *existenceCachingCAS) forget(e *list.Element) {
	delete(c.entries, e.Value.(*existenceEntry).d)
	c.order.Remove(e)
}

// forgetAll drops every entry.
func (c *existenceCachingCAS) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.order.Init()
}

// failed updates the cache after a call under ctx failed with err: a miss
// of d (when not nil) forgets d, an unreachable remote forgets everything.
// The caller giving up says nothing about the remote.
func (c *existenceCachingCAS) failed(ctx context.Context, err error, d *digest.Digest) {
	switch code := status.Code(err); {
	case code == codes.NotFound && d != nil:
		c.mu.Lock()
		if e, ok := c.entries[*d]; ok {
			c.forget(e)
		}
		c.mu.Unlock()
	case Stalled(ctx):
		c.forgetAll()
	case ctx.Err() != nil:
	case code == codes.Unavailable || code == codes.DeadlineExceeded:
		c.forgetAll()
	}
}

func (c *existenceCachingCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.GetWith(ctx, d, offset, GetHint{})
}

func (c *existenceCachingCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint GetHint) (io.ReadCloser, error) {
	rc, err := c.base.GetWith(ctx, d, offset, hint)
	if err != nil {
		c.failed(ctx, err, &d)
	}
	return rc, err
}

// GetMany passes the batch to base and learns from each entry's failure
// as Get does.
func (c *existenceCachingCAS) GetMany(ctx context.Context, ds []digest.Digest) []BlobResult {
	out := c.base.GetMany(ctx, ds)
	for i, r := range out {
		if r.Err != nil {
			c.failed(ctx, r.Err, &ds[i])
		}
	}
	return out
}

// Put, PutWith and PutBytes pass through: a write teaches nothing that
// FindMissing may rely on (the remote may drop the blob).
func (c *existenceCachingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.base.Put(ctx, d, r)
}

func (c *existenceCachingCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint PutHint) error {
	return c.base.PutWith(ctx, d, r, hint)
}

func (c *existenceCachingCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint PutHint) error {
	return c.base.PutBytes(ctx, d, data, hint)
}
