package localexec

import (
	"bytes"
	"context"
	"io"
	"os"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// UploadDir stores the local directory dir in cas as a REAPI input tree and
// returns the digest of its root Directory: regular files (executable bit
// kept), symlinks (targets verbatim), subdirectories including empty ones,
// entries sorted by name. Other file types (sockets, devices, FIFOs) are
// skipped. Files are hashed and uploaded as streams, and only the blobs a
// batched FindMissing reports absent are uploaded. Every digest is SHA-256;
// see UploadDirIn. Safe for concurrent use.
func UploadDir(ctx context.Context, cas store.CAS, dir string) (digest.Digest, error) {
	return UploadDirIn(ctx, cas, digest.SHA256, dir)
}

// UploadDirIn is UploadDir with every file and Directory hashed with fn;
// the returned root digest is of fn.
func UploadDirIn(ctx context.Context, cas store.CAS, fn digest.Function, dir string) (digest.Digest, error) {
	blobs := newBlobSet(fn)
	tree, err := blobs.scanTree(ctx, dir)
	if err != nil {
		return digest.Digest{}, err
	}
	if err := blobs.upload(ctx, cas); err != nil {
		return digest.Digest{}, err
	}
	return tree.rootDigest, nil
}

// blobSet collects blobs to upload: small ones held in memory (Directory and
// Tree messages), files by path so they are streamed, never held whole.
// Every digest it computes is of fn, the function of the action (or
// upload) it is for.
type blobSet struct {
	fn    digest.Function
	data  map[digest.Digest][]byte
	files map[digest.Digest]string
}

func newBlobSet(fn digest.Function) *blobSet {
	return &blobSet{fn: fn, data: map[digest.Digest][]byte{}, files: map[digest.Digest]string{}}
}

// addFile hashes the file at p, records it for upload and returns its digest.
func (b *blobSet) addFile(p string) (digest.Digest, error) {
	d, err := hashFile(b.fn, p)
	if err == nil {
		b.files[d] = p
	}
	return d, err
}

// hashFile streams the file at p through fn.
func hashFile(fn digest.Function, p string) (digest.Digest, error) {
	f, err := os.Open(p)
	if err != nil {
		return digest.Digest{}, internalf(err, "open %s", p)
	}
	defer f.Close()
	h := fn.NewHasher()
	n, err := io.Copy(h, f)
	if err != nil {
		return digest.Digest{}, internalf(err, "hash %s", p)
	}
	return digest.Digest{Hash: digest.HashString(h), Size: n, Func: fn}, nil
}

// addMessage encodes m deterministically, records it and returns its digest.
func (b *blobSet) addMessage(m proto.Message) (digest.Digest, error) {
	d, data, err := digest.OfMessageIn(b.fn, m)
	if err != nil {
		return digest.Digest{}, internalf(err, "encode %T", m)
	}
	b.data[d] = data
	return d, nil
}

// upload asks cas which blobs are missing (batched) and streams those in.
func (b *blobSet) upload(ctx context.Context, cas store.CAS) error {
	all := make([]digest.Digest, 0, len(b.data)+len(b.files))
	for d := range b.data {
		all = append(all, d)
	}
	for d := range b.files {
		all = append(all, d)
	}
	missing, err := findMissing(ctx, cas, all)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallelism)
	for _, d := range missing {
		g.Go(func() error { return b.put(gctx, cas, d) })
	}
	return g.Wait()
}

func (b *blobSet) put(ctx context.Context, cas store.CAS, d digest.Digest) error {
	if data, ok := b.data[d]; ok {
		return wrapPut(cas.Put(ctx, d, bytes.NewReader(data)), d)
	}
	f, err := os.Open(b.files[d])
	if err != nil {
		return internalf(err, "open %s", b.files[d])
	}
	defer f.Close()
	return wrapPut(cas.Put(ctx, d, f), d)
}

func wrapPut(err error, d digest.Digest) error {
	if err != nil {
		return internalf(err, "upload blob %s", d)
	}
	return nil
}
