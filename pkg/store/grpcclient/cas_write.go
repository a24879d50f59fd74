package grpcclient

import (
	"context"
	"errors"
	"hash"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/uuid"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// writeChunk is the payload of one ByteStream WriteRequest.
const writeChunk = 1 << 20

// write uploads a blob through ByteStream Write under a fresh upload id, in
// writeChunk pieces. It hashes as it goes and checks the digest before the
// last piece is sent with finish_write, so a remote never commits bytes that
// do not match d. Not retried: r cannot be rewound (the write-back queue
// retries the whole blob).
func (c *casClient) write(ctx context.Context, d digest.Digest, r io.Reader) error {
	if comp := c.r.streamCompressor(ctx); comp != repb.Compressor_IDENTITY {
		return c.writeCompressed(ctx, comp, d, r)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.r.bs.Write(ctx)
	if err != nil {
		return wrap(c.r.name, err)
	}
	resource := digest.WriteResourceName(c.r.instance, uuid.NewString(), d)
	h := d.NewHasher()
	buf := make([]byte, min(writeChunk, d.Size))
	for off := int64(0); off < d.Size; {
		n := min(int64(len(buf)), d.Size-off)
		last := off+n == d.Size
		if err := readChunk(r, buf[:n], h, d, off, last); err != nil {
			return err
		}
		req := &bspb.WriteRequest{WriteOffset: off, Data: buf[:n], FinishWrite: last}
		if off == 0 {
			req.ResourceName = resource
		}
		if err := stream.Send(req); err != nil {
			break // the status comes from CloseAndRecv; io.EOF may mean the remote has the blob
		}
		c.r.metrics.sent.Add(float64(n))
		off += n
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return wrap(c.r.name, err)
	}
	if cs := resp.GetCommittedSize(); cs != d.Size && cs != -1 {
		return wrap(c.r.name, status.Errorf(codes.Internal, "blob %s: the remote committed %d bytes", d, cs))
	}
	return nil
}

// readChunk fills p from r and feeds h. At the last chunk it checks that r
// has ended and that the whole blob hashes to d: bad input is the caller's,
// so INVALID_ARGUMENT.
func readChunk(r io.Reader, p []byte, h hash.Hash, d digest.Digest, off int64, last bool) error {
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return status.Errorf(codes.InvalidArgument, "blob %s: the data ended before %d bytes", d, d.Size)
		}
		return status.Errorf(status.Code(err), "blob %s: reading the data to upload at %d: %v", d, off, err)
	}
	h.Write(p)
	if !last {
		return nil
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return status.Errorf(codes.InvalidArgument, "blob %s: the data is longer than %d bytes", d, d.Size)
	}
	if got := digest.HashString(h); got != d.Hash {
		return status.Errorf(codes.InvalidArgument, "blob %s: bytes hash to %s", d, got)
	}
	return nil
}
