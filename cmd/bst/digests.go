package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// maxMessageSize bounds the Directory and Tree messages bst reads whole.
const maxMessageSize = 64 << 20

// readBlob reads the whole blob d from cas; for messages, not file data.
func readBlob(ctx context.Context, cas store.CAS, d digest.Digest) ([]byte, error) {
	if d.Size > maxMessageSize {
		return nil, fmt.Errorf("blob %s is too large to read as a message (%d bytes)", d, d.Size)
	}
	rc, err := cas.Get(ctx, d, 0)
	if err != nil {
		return nil, blobNotFound(err, d)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, blobNotFound(err, d)
}

// blobNotFound says in plain words that blob d is nowhere, in place of a
// NOT_FOUND whose text repeats the digest once per layer and quotes what
// castd's remotes answered as if castd had said it.
func blobNotFound(err error, d digest.Digest) error {
	if status.Code(err) != codes.NotFound {
		return err
	}
	return fmt.Errorf("blob %s not found: neither castd nor any of its remotes has it", d)
}

// readMessage reads blob d from cas and decodes it into m.
func readMessage(ctx context.Context, cas store.CAS, d digest.Digest, m proto.Message) error {
	b, err := readBlob(ctx, cas, d)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("blob %s is not a %T: %w", d, m, err)
	}
	return nil
}

// asDirectory reports whether b is the canonical encoding of a non-empty
// Directory: it decodes without unknown fields and encodes back to the same
// bytes, which arbitrary file contents practically never do.
func asDirectory(b []byte) bool {
	var dir repb.Directory
	if len(b) == 0 || proto.Unmarshal(b, &dir) != nil || len(dir.ProtoReflect().GetUnknown()) != 0 {
		return false
	}
	if len(dir.GetFiles())+len(dir.GetDirectories())+len(dir.GetSymlinks()) == 0 {
		return false
	}
	back, err := proto.MarshalOptions{Deterministic: true}.Marshal(&dir)
	return err == nil && bytes.Equal(back, b)
}

// overlayCAS serves some blobs (the Directory messages of a Tree) from
// memory and everything else from the underlying CAS, so a Tree from an
// ActionResult can be materialised with MaterializeDir. Every read
// method, fast paths included, looks at the overlay first.
type overlayCAS struct {
	base  store.CAS
	blobs map[digest.Digest][]byte
}

// treeCAS returns cas overlaid with the directories of t and the digest of
// t's root Directory.
func treeCAS(cas store.CAS, t *repb.Tree) (store.CAS, digest.Digest, error) {
	o := &overlayCAS{base: cas, blobs: map[digest.Digest][]byte{}}
	var root digest.Digest
	for i, dir := range append([]*repb.Directory{t.GetRoot()}, t.GetChildren()...) {
		d, b, err := digest.OfMessage(dir)
		if err != nil {
			return nil, digest.Digest{}, err
		}
		o.blobs[d] = b
		if i == 0 {
			root = d
		}
	}
	return o, root, nil
}

func (o *overlayCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	var rest []digest.Digest
	for _, d := range ds {
		if _, ok := o.blobs[d]; !ok {
			rest = append(rest, d)
		}
	}
	if len(rest) == 0 {
		return nil, nil
	}
	return o.base.FindMissing(ctx, rest)
}

func (o *overlayCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return o.GetWith(ctx, d, offset, store.GetHint{})
}

func (o *overlayCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	if b, ok := o.blobs[d]; ok && offset <= int64(len(b)) {
		return io.NopCloser(bytes.NewReader(b[offset:])), nil
	}
	return o.base.GetWith(ctx, d, offset, hint)
}

// GetMany serves the overlay's blobs from memory and asks base, in one
// batch, for the others.
func (o *overlayCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := make([]store.BlobResult, len(ds))
	var rest []digest.Digest
	var at []int
	for i, d := range ds {
		if b, ok := o.blobs[d]; ok {
			out[i] = store.BlobResult{Data: b, Verified: true}
			continue
		}
		rest, at = append(rest, d), append(at, i)
	}
	if len(rest) > 0 {
		for k, r := range o.base.GetMany(ctx, rest) {
			out[at[k]] = r
		}
	}
	return out
}

// Writes go to base.
func (o *overlayCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return o.base.Put(ctx, d, r)
}

func (o *overlayCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	return o.base.PutWith(ctx, d, r, hint)
}

func (o *overlayCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	return o.base.PutBytes(ctx, d, data, hint)
}
