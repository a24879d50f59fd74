package asset

import (
	"context"
	"encoding/binary"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/digest"
)

// Records is the durable key-value namespace the local index lives in;
// (*disk.Store).Records("assets") implements it. Get of a missing key is
// NOT_FOUND.
type Records interface {
	Put(key, value []byte) error
	Get(key []byte) ([]byte, error)
	Delete(key []byte) error
}

// LocalOptions tunes NewLocalIndex. The zero value is usable.
type LocalOptions struct {
	// Clock is the clock for recording times and expiry; nil means the
	// wall clock.
	Clock clock.Clock
	// Logger receives reports of unreadable records; nil means
	// slog.Default().
	Logger *slog.Logger
}

// NewLocalIndex returns the asset index kept in recs. Each URI is its own
// record keyed by (kind, URI, sorted qualifiers), so a lookup by any one
// pushed URI hits. Expired records are deleted when a lookup meets them;
// nothing else reclaims them (they are ~100 bytes each). Cost: one badger
// read per URI tried, one write per URI recorded. Safe for concurrent use.
func NewLocalIndex(recs Records, opts LocalOptions) Index {
	opts.Clock = clock.OrReal(opts.Clock)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &localIndex{recs: recs, opts: opts}
}

type localIndex struct {
	recs Records
	opts LocalOptions
}

func (l *localIndex) Lookup(_ context.Context, a Asset, oldest time.Time) (Ref, error) {
	now := l.opts.Clock.Now()
	for _, uri := range a.URIs {
		key := entryKey(a.Kind, a.Func, uri, a.Qualifiers)
		v, err := l.recs.Get(key)
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return Ref{}, status.Errorf(status.Code(err), "local asset index: %v", status.Convert(err).Message())
		}
		ref, ok := decodeRef(v)
		if !ok || ref.Digest.Func != a.Func {
			l.opts.Logger.Warn("asset: deleting an unreadable local index record", "uri", uri, "kind", a.Kind)
			_ = l.recs.Delete(key)
			continue
		}
		if !ref.ExpireAt.IsZero() && !now.Before(ref.ExpireAt) {
			_ = l.recs.Delete(key)
			continue
		}
		if ref.Recorded.Before(oldest) {
			continue
		}
		ref.URI = uri
		return ref, nil
	}
	return Ref{}, status.Errorf(codes.NotFound, "%s not in the local index", a)
}

func (l *localIndex) Record(_ context.Context, a Asset, ref Ref) error {
	if ref.Recorded.IsZero() {
		ref.Recorded = l.opts.Clock.Now()
	}
	v := encodeRef(ref)
	for _, uri := range a.URIs {
		if err := l.recs.Put(entryKey(a.Kind, ref.Digest.Func, uri, a.Qualifiers), v); err != nil {
			return status.Errorf(codes.Internal, "local asset index: record %q: %v", uri, err)
		}
	}
	return nil
}

// The version byte leads every value so the encoding can change. A SHA-256
// reference is written as version 1, exactly as before castd knew other
// functions; any other function as version 2, which adds the function.
const (
	recordSHA256   = 1
	recordFunction = 2
)

// encodeRef lays a reference out as version, (for version 2 the
// function,) recorded and expiry (Unix nanoseconds, 0 for never), size,
// then the hex hash.
func encodeRef(r Ref) []byte {
	b := []byte{recordSHA256}
	if r.Digest.Func != digest.SHA256 {
		b = []byte{recordFunction, byte(r.Digest.Func)}
	}
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(r.Recorded)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(r.ExpireAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Digest.Size))
	return append(b, r.Digest.Hash...)
}

func decodeRef(b []byte) (Ref, bool) {
	fn := digest.SHA256
	switch {
	case len(b) > 2 && b[0] == recordFunction:
		fn, b = digest.Function(b[1]), b[1:]
		if fn == digest.SHA256 || !digest.AllFunctions.Has(fn) {
			return Ref{}, false
		}
	case len(b) == 0 || b[0] != recordSHA256:
		return Ref{}, false
	}
	if len(b) != 1+24+fn.HashLength() {
		return Ref{}, false
	}
	d, err := digest.NewIn(fn, string(b[25:]), int64(binary.BigEndian.Uint64(b[17:25])))
	if err != nil {
		return Ref{}, false
	}
	return Ref{
		Digest:   d,
		Recorded: fromUnixNano(int64(binary.BigEndian.Uint64(b[1:9]))),
		ExpireAt: fromUnixNano(int64(binary.BigEndian.Uint64(b[9:17]))),
	}, true
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
