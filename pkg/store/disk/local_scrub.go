package disk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/digest"
)

// maxScrubDeleted bounds ScrubReport.Deleted, so that a store that turns
// out to be mostly corrupt cannot make one scrub hold a huge list.
const maxScrubDeleted = 10000

// ScrubOptions configures Scrub. The zero value scrubs as fast as the disk
// reads.
type ScrubOptions struct {
	// BytesPerSecond bounds the rate at which blob bytes are read; 0 means
	// unbounded.
	BytesPerSecond int64
	// Clock paces the reads; nil means the wall clock.
	Clock clock.Clock
}

// ScrubReport is the outcome of one Scrub.
type ScrubReport struct {
	Checked      int64           // blobs verified (good and bad)
	CheckedBytes int64           // their bytes
	Corrupt      int64           // blobs found corrupt or missing, and deleted
	Deleted      []digest.Digest // the first maxScrubDeleted of those
	Errors       int64           // blobs that could not be read (an I/O error), kept
}

// Scrub verifies every blob stored when it starts, deleting (and counting,
// in castd_store_verify_failures_total too) those whose bytes are missing
// or corrupt: a file blob is hashed whole with its digest's function,
// a small blob checked against its CRC-32C. Blobs stored or deleted during
// the scrub are skipped. A blob being checked is pinned, so eviction leaves
// it alone meanwhile. It reads at most opts.BytesPerSecond; cost otherwise
// is one read of every stored byte. It waits for the index to finish
// loading. The error is the context's, with the report so far. Safe for
// concurrent use (two scrubs do twice the work).
func (l *Store) Scrub(ctx context.Context, opts ScrubOptions) (ScrubReport, error) {
	var rep ScrubReport
	select {
	case <-l.loaded:
	case <-ctx.Done():
		return rep, status.FromContextError(ctx.Err()).Err()
	}
	p := newPacer(opts)
	for i := range l.ix.shards {
		for _, k := range l.ix.keys(i) {
			if err := ctx.Err(); err != nil {
				return rep, status.FromContextError(err).Err()
			}
			if err := l.scrubOne(ctx, k, &rep, p); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// scrubOne verifies one blob, if it is still stored, into rep.
func (l *Store) scrubOne(ctx context.Context, k blobKey, rep *ScrubReport, p *pacer) error {
	e, ok := l.ix.pin(k)
	if !ok {
		return nil
	}
	defer l.ix.unpin(k)
	var bad bool
	var err error
	if e.inline {
		_, err = l.readInline(k, e)
		bad = status.Code(err) == codes.NotFound // readInline deleted it
	} else {
		bad, err = l.scrubFile(ctx, k, p)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return status.FromContextError(ctxErr).Err()
	}
	rep.Checked++
	rep.CheckedBytes += k.size
	l.scrubbed.Add(1)
	switch {
	case bad:
		rep.Corrupt++
		l.scrubCorrupt.Add(1)
		if len(rep.Deleted) < maxScrubDeleted {
			rep.Deleted = append(rep.Deleted, k.digest())
		}
	case err != nil:
		rep.Errors++
		l.log.Warn("store: scrub could not read a blob", "digest", k.digest().String(), "error", err)
	}
	if e.inline {
		return p.wait(ctx, k.size)
	}
	return nil
}

// scrubFile hashes the file blob k, paced by p, and deletes it if it does
// not match its digest. bad reports a deletion; err an I/O error that left
// the blob in place.
func (l *Store) scrubFile(ctx context.Context, k blobKey, p *pacer) (bad bool, err error) {
	path := l.blobPath(k)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return l.scrubDelete(k, "blob file is missing"), nil
	}
	if err != nil {
		return false, ioError("open", path, err)
	}
	defer f.Close()
	h := k.fn.NewHasher()
	n, err := io.Copy(h, &pacedReader{ctx: ctx, r: f, p: p})
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case err != nil:
		return false, ioError("read", path, err)
	case n != k.size:
		return l.scrubDelete(k, "blob file has the wrong size"), nil
	case !bytes.Equal(h.Sum(nil), k.raw()):
		return l.scrubDelete(k, "blob file does not hash to its digest"), nil
	}
	return false, nil
}

// scrubDelete deletes k, found bad by a scrub, and reports true.
func (l *Store) scrubDelete(k blobKey, why string) bool {
	_ = l.discard(k, "scrub: "+why)
	return true
}

// keys returns the keys of shard i (a snapshot).
func (ix *index) keys(i int) []blobKey {
	s := &ix.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]blobKey, 0, s.len())
	s.each(func(k blobKey, _ entry) bool {
		out = append(out, k)
		return true
	})
	return out
}

// pacedReader reads through a pacer in chunks of at most chunkSize.
type pacedReader struct {
	ctx context.Context
	r   io.Reader
	p   *pacer
}

func (r *pacedReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b[:min(len(b), chunkSize)])
	if werr := r.p.wait(r.ctx, int64(n)); werr != nil {
		return n, werr
	}
	return n, err
}

// pacer spreads reads out to at most rate bytes a second on average since
// the scrub began. Not safe for concurrent use.
type pacer struct {
	rate  int64
	clock clock.Clock
	start time.Time
	done  int64
}

func newPacer(opts ScrubOptions) *pacer {
	p := &pacer{rate: opts.BytesPerSecond, clock: clock.OrReal(opts.Clock)}
	p.start = p.clock.Now()
	return p
}

// wait accounts n bytes read and waits until they are due at the rate. It
// fails once ctx has ended, so that a large file does not hold up
// shutdown.
func (p *pacer) wait(ctx context.Context, n int64) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	p.done += n
	due := p.start.Add(time.Duration(float64(p.done) / float64(p.rate) * float64(time.Second)))
	if d := due.Sub(p.clock.Now()); d > 0 {
		return p.clock.Sleep(ctx, d)
	}
	return nil
}
