package grpcclient

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// sha256Only is what a remote takes that lists no digest function, or has
// no Capabilities service: a server older than REAPI 2.3 knows SHA-256
// only.
var sha256Only = digest.SetOf(digest.SHA256)

// Functions returns the digest functions the remote takes: those its
// Capabilities list in cache_capabilities.digest_functions that castd can
// verify; SHA-256 alone when the list is empty or the remote has no
// Capabilities service (UNIMPLEMENTED). The answer is cached for the life
// of the Remote like Capabilities; a failure to get it is returned (and
// asked again next time).
func (r *Remote) Functions(ctx context.Context) (digest.FunctionSet, error) {
	if s := r.fnsV.Load(); s != 0 {
		return digest.FunctionSet(s), nil
	}
	_, err := r.Capabilities(ctx) // its success stores fnsV
	if status.Code(err) == codes.Unimplemented {
		r.fnsV.Store(uint32(sha256Only))
		return sha256Only, nil
	}
	if err != nil {
		return 0, err
	}
	return digest.FunctionSet(r.fnsV.Load()), nil
}

// functionsOf is the functions a remote with Capabilities c takes.
func functionsOf(c *repb.ServerCapabilities) digest.FunctionSet {
	if s := digest.SetFromProtos(c.GetCacheCapabilities().GetDigestFunctions()); s != 0 {
		return s
	}
	return sha256Only
}

// functionsVia is Functions behind breaker b: the Capabilities call is one
// of b's calls (it fails fast while b is open, and its outcome counts),
// as it is when a read asks for the batch limit.
func (r *Remote) functionsVia(ctx context.Context, b *breaker) (digest.FunctionSet, error) {
	if err := b.allow(); err != nil {
		return 0, err
	}
	s, err := r.Functions(ctx)
	b.done(ctx, err)
	return s, err
}

// fnField is the digest_function field of a request about digests of f:
// unset for SHA-256, so that such requests are what they were before
// REAPI 2.3 (and what a pre-2.3 server understands), f otherwise.
func fnField(f digest.Function) repb.DigestFunction_Value {
	if f == digest.SHA256 {
		return repb.DigestFunction_UNKNOWN
	}
	return f.Proto()
}

// byFunction splits ds into runs of one function each, keeping the order
// within each; a single-function ds (the usual case) is returned as is.
func byFunction(ds []digest.Digest) [][]digest.Digest {
	if len(ds) == 0 {
		return nil
	}
	f := ds[0].Func
	mixed := false
	for _, d := range ds[1:] {
		if d.Func != f {
			mixed = true
			break
		}
	}
	if !mixed {
		return [][]digest.Digest{ds}
	}
	at := map[digest.Function]int{}
	var out [][]digest.Digest
	for _, d := range ds {
		i, ok := at[d.Func]
		if !ok {
			i = len(out)
			at[d.Func] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], d)
	}
	return out
}

// gate is the one check that no digest of a function the remote does not
// take is ever sent to it (see Functions). It stands in front of a role's
// breaker, so that a digest it answers for costs no call and says nothing
// about the remote's health: reads of such a digest are NOT_FOUND (a
// miss: a fan-out goes on to its next tier), FindMissing reports them
// missing without asking, and writes fail with
// *store.UnsupportedFunctionError (the write-back queue drops the push).
type gate struct {
	r *Remote
	b *breaker
}

// takes returns nil when the remote takes f, a *store.UnsupportedFunctionError
// when it does not, and the failure to learn its functions otherwise.
// SHA-256, REAPI's default, is not worth a question: until the remote's
// functions are known (the first read or write learns them with its batch
// limit) a SHA-256 digest goes through, so SHA-256 traffic makes exactly
// the calls it made before castd knew other functions; once they are
// known, a remote that does not list SHA-256 is spared it too.
func (g gate) takes(ctx context.Context, f digest.Function) error {
	var s digest.FunctionSet
	if v := g.r.fnsV.Load(); v != 0 {
		s = digest.FunctionSet(v)
	} else if f == digest.SHA256 {
		return nil
	} else {
		var err error
		if s, err = g.r.functionsVia(ctx, g.b); err != nil {
			return err
		}
	}
	if !s.Has(f) {
		return &store.UnsupportedFunctionError{Func: f, Store: label(g.r.name)}
	}
	return nil
}

// read is takes for a read: an unsupported function is a miss.
func (g gate) read(ctx context.Context, f digest.Function) error {
	err := g.takes(ctx, f)
	if store.IsUnsupportedFunction(err) {
		return unsupportedRead{err}
	}
	return err
}

// split returns the indexes of ds whose function the remote takes and the
// error of each function it does not (nil for those it takes), or the
// failure to learn its functions.
func (g gate) split(ctx context.Context, ds []digest.Digest) (ok []int, refused map[digest.Function]error, err error) {
	for i, d := range ds {
		e, seen := refused[d.Func]
		if !seen {
			e = g.takes(ctx, d.Func)
			if e != nil && !store.IsUnsupportedFunction(e) {
				return nil, nil, e
			}
			if refused == nil {
				refused = map[digest.Function]error{}
			}
			refused[d.Func] = e
		}
		if e == nil {
			ok = append(ok, i)
		}
	}
	return ok, refused, nil
}

// unsupportedRead is a read of a digest whose function the remote does
// not take: NOT_FOUND, and store.IsUnsupportedFunction for callers that
// tell it from a miss the remote answered.
type unsupportedRead struct{ err error }

func (e unsupportedRead) Error() string { return e.err.Error() }
func (e unsupportedRead) Unwrap() error { return e.err }

// GRPCStatus makes it NOT_FOUND.
func (e unsupportedRead) GRPCStatus() *status.Status {
	return status.New(codes.NotFound, e.err.Error())
}

// gatedCAS puts the gate in front of base (the remote's breaker CAS).
type gatedCAS struct {
	gate
	base store.CAS
}

func (c *gatedCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	ok, refused, err := c.split(ctx, ds)
	if err != nil {
		return nil, err
	}
	if len(ok) == len(ds) {
		return c.base.FindMissing(ctx, ds)
	}
	asked := make([]digest.Digest, 0, len(ok))
	var missing []digest.Digest
	for _, d := range ds {
		switch {
		case refused[d.Func] == nil:
			asked = append(asked, d)
		case !d.IsEmpty(): // the empty blob is present everywhere
			missing = append(missing, d)
		}
	}
	if len(asked) > 0 {
		found, err := c.base.FindMissing(ctx, asked)
		if err != nil {
			return nil, err
		}
		missing = append(missing, found...)
	}
	return missing, nil
}

func (c *gatedCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.GetWith(ctx, d, offset, store.GetHint{})
}

func (c *gatedCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	if err := c.read(ctx, d.Func); err != nil {
		return nil, err
	}
	return c.base.GetWith(ctx, d, offset, hint)
}

func (c *gatedCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	ok, refused, err := c.split(ctx, ds)
	if err != nil {
		return store.FailAll(len(ds), err)
	}
	if len(ok) == len(ds) {
		return c.base.GetMany(ctx, ds)
	}
	out := make([]store.BlobResult, len(ds))
	for i, d := range ds {
		if e := refused[d.Func]; e != nil {
			out[i].Err = unsupportedRead{e}
		}
	}
	if len(ok) > 0 {
		asked := make([]digest.Digest, len(ok))
		for k, i := range ok {
			asked[k] = ds[i]
		}
		for k, r := range c.base.GetMany(ctx, asked) {
			out[ok[k]] = r
		}
	}
	return out
}

func (c *gatedCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, store.PutHint{})
}

func (c *gatedCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	if err := c.takes(ctx, d.Func); err != nil {
		return err
	}
	return c.base.PutWith(ctx, d, r, hint)
}

func (c *gatedCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	if err := c.takes(ctx, d.Func); err != nil {
		return err
	}
	return c.base.PutBytes(ctx, d, data, hint)
}

// gatedAC puts the gate in front of base (the remote's breaker action
// cache).
type gatedAC struct {
	gate
	base store.ActionCache
}

func (c *gatedAC) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	if err := c.read(ctx, action.Func); err != nil {
		return nil, err
	}
	return c.base.GetActionResult(ctx, action)
}

func (c *gatedAC) UpdateActionResult(ctx context.Context, action digest.Digest, result *repb.ActionResult) error {
	if err := c.takes(ctx, action.Func); err != nil {
		return err
	}
	return c.base.UpdateActionResult(ctx, action, result)
}
