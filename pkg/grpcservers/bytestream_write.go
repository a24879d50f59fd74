package grpcservers

import (
	"context"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Write receives a blob chunk by chunk into an upload (see
// upload_session.go) and stores it on finish_write. A
// blob sent whole in one request goes straight to the store. A stream that
// sends nothing for UploadIdleTimeout is closed and its upload dropped; a
// broken one leaves its upload resumable for as long.
func (s *byteStreamServer) Write(stream bspb.ByteStream_WriteServer) error {
	recv := s.receiver(stream)
	defer recv.stop()
	req, err := recv.next()
	if err == io.EOF {
		return status.Error(codes.InvalidArgument, "write stream closed before its first request")
	} else if err != nil {
		return err
	}
	res, c, err := s.parseUploadResource(req.GetResourceName())
	if err != nil {
		return err
	}
	cas, err := s.backend.CAS(stream.Context(), res.Instance)
	if err != nil {
		return err
	}
	var committed int64
	if s.whole(req, res.Digest, c) {
		committed, err = s.putWhole(stream.Context(), cas, res.Digest, c, req.GetData())
	} else {
		committed, err = s.writeUpload(stream.Context(), recv, cas, res, c, req)
	}
	if err != nil {
		return err
	}
	return stream.SendAndClose(&bspb.WriteResponse{CommittedSize: committed})
}

// whole reports that req, a stream's first, carries the entire blob: all
// its bytes, or for a compressed upload finish_write on a blob small
// enough to decode in memory (the batch limit).
func (s *byteStreamServer) whole(req *bspb.WriteRequest, d digest.Digest, c repb.Compressor_Value) bool {
	if !req.GetFinishWrite() || req.GetWriteOffset() != 0 {
		return false
	}
	if c != repb.Compressor_IDENTITY {
		return d.Size <= s.maxWhole
	}
	return int64(len(req.GetData())) == d.Size
}

// putWhole stores a blob that arrived in one request, without a spool
// file, and returns the committed_size to answer: the bytes received.
func (s *byteStreamServer) putWhole(ctx context.Context, cas store.CAS, d digest.Digest, c repb.Compressor_Value, data []byte) (int64, error) {
	s.metrics.received.WithLabelValues(serviceByteStream).Add(float64(len(data)))
	blob, err := decodeWhole(c, data, d)
	if err != nil {
		return 0, err
	}
	if err := cas.PutBytes(ctx, d, blob, store.PutHint{}); err != nil {
		return 0, err
	}
	return int64(len(data)), nil
}

// writeUpload continues or starts the upload named by res and feeds it the
// stream's requests until the blob is stored. It returns the
// committed_size to answer: the blob's size for identity; for a
// compressed upload the compressed bytes received, or -1 when the blob
// was already stored (REAPI's answer for a compressed upload that someone
// else completed).
func (s *byteStreamServer) writeUpload(ctx context.Context, recv *receiver, cas store.CAS, res digest.Resource, c repb.Compressor_Value, req *bspb.WriteRequest) (int64, error) {
	up, err := s.open(ctx, cas, uploadName(res, c), res.Digest, c, req.GetWriteOffset())
	if err != nil {
		return 0, err
	}
	if up == nil {
		if c != repb.Compressor_IDENTITY {
			return -1, nil
		}
		return res.Digest.Size, nil
	}
	defer s.uploads.detach(up)
	if err := s.receive(ctx, recv, cas, up, req); err != nil {
		return 0, err
	}
	if c != repb.Compressor_IDENTITY {
		return up.committed(), nil
	}
	return res.Digest.Size, nil
}

// parseUploadResource parses a write resource name and its compressor,
// rejecting compressors and digest functions castd does not advertise.
func (s *byteStreamServer) parseUploadResource(name string) (digest.Resource, repb.Compressor_Value, error) {
	res, err := s.resource(digest.ParseWriteResource(name))
	if err != nil {
		return res, 0, err
	}
	c, err := compressorOf(res)
	return res, c, err
}

// open returns the upload to continue, attached to the calling stream, or
// nil when the blob is stored and the client may stop sending (REAPI lets
// the server answer early).
func (s *byteStreamServer) open(ctx context.Context, cas store.CAS, name string, d digest.Digest, c repb.Compressor_Value, offset int64) (*upload, error) {
	if up := s.uploads.get(name); up != nil && (offset != 0 || up.committed() == 0) {
		stored, err := s.uploads.attach(up, ctx.Done())
		if stored || err != nil {
			return nil, err
		}
		return up, nil
	}
	missing, err := cas.FindMissing(ctx, []digest.Digest{d})
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	return s.uploads.start(name, d, c)
}

// receive feeds requests to up until finish_write, then stores the blob.
func (s *byteStreamServer) receive(ctx context.Context, recv *receiver, cas store.CAS, up *upload, req *bspb.WriteRequest) error {
	first := req.GetResourceName()
	for {
		if n := req.GetResourceName(); n != "" && n != first {
			return status.Errorf(codes.InvalidArgument, "resource_name %q differs from the stream's first %q", n, first)
		}
		if err := s.chunk(up, req); err != nil {
			return err
		}
		if req.GetFinishWrite() {
			return s.commit(ctx, cas, up)
		}
		var err error
		if req, err = recv.next(); err == io.EOF {
			return status.Errorf(codes.InvalidArgument, "write stream for %s closed before finish_write; resume from committed_size %d", up.name, up.committed())
		} else if recv.idle(err) {
			s.uploads.abort(up, err)
			return err
		} else if err != nil {
			return err
		}
	}
}

// chunk appends one WriteRequest's data to up (decoded first when up is
// compressed). write_offset counts the bytes committed so far, compressed
// bytes for a compressed upload (REAPI mixes the two units; resuming
// clients send the committed_size they were told).
func (s *byteStreamServer) chunk(up *upload, req *bspb.WriteRequest) error {
	committed, data := up.committed(), req.GetData()
	if req.GetWriteOffset() != committed {
		return status.Errorf(codes.InvalidArgument, "write_offset %d, but %d bytes of %s are committed", req.GetWriteOffset(), committed, up.name)
	}
	if up.inflate != nil {
		if err := up.inflate.write(data); err != nil {
			s.uploads.abort(up, err)
			return err
		}
		s.metrics.received.WithLabelValues(serviceByteStream).Add(float64(len(data)))
		return nil
	}
	end := committed + int64(len(data))
	if end > up.digest.Size {
		s.uploads.abort(up, status.Error(codes.InvalidArgument, "too many bytes"))
		return status.Errorf(codes.InvalidArgument, "data: %d bytes past offset %d exceed the blob size %d", len(data), committed, up.digest.Size)
	}
	if req.GetFinishWrite() && end != up.digest.Size {
		s.uploads.abort(up, status.Error(codes.InvalidArgument, "short upload"))
		return status.Errorf(codes.InvalidArgument, "finish_write after %d bytes, but the blob size is %d", end, up.digest.Size)
	}
	if err := up.write(data); err != nil {
		s.uploads.abort(up, err)
		return err
	}
	s.metrics.received.WithLabelValues(serviceByteStream).Add(float64(len(data)))
	return nil
}

// commit stores up's spool file. Only a client that went away leaves the
// upload resumable (it may send finish_write again); any verdict of the
// store ends it.
func (s *byteStreamServer) commit(ctx context.Context, cas store.CAS, up *upload) error {
	err := s.store(ctx, cas, up)
	switch {
	case err == nil:
		s.uploads.stored(up)
	case ctx.Err() == nil:
		s.uploads.abort(up, err)
	}
	return err
}

// store commits up's spool (which verifies it and, for the local store,
// takes its file in as the blob) and then passes the blob to cas with Put,
// so that the decorators of the instance's CAS see the write: write-back
// queues it for push, write-through sends it to the storage service. The
// local store finds the blob stored and does not read it again.
func (s *byteStreamServer) store(ctx context.Context, cas store.CAS, up *upload) error {
	if up.inflate != nil {
		if err := up.inflate.finish(); err != nil {
			return err
		}
	}
	if err := up.spool.Commit(ctx); err != nil {
		return err
	}
	rc, err := up.spool.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	return cas.Put(ctx, up.digest, rc)
}

// QueryWriteStatus reports how much of an upload the server holds:
// committed bytes of an upload in progress, the full size once the blob is
// stored, NOT_FOUND otherwise (clients then start again from 0).
func (s *byteStreamServer) QueryWriteStatus(ctx context.Context, req *bspb.QueryWriteStatusRequest) (*bspb.QueryWriteStatusResponse, error) {
	res, c, err := s.parseUploadResource(req.GetResourceName())
	if err != nil {
		return nil, err
	}
	name := uploadName(res, c)
	if up := s.uploads.get(name); up != nil {
		return &bspb.QueryWriteStatusResponse{CommittedSize: up.committed()}, nil
	}
	cas, err := s.backend.CAS(ctx, res.Instance)
	if err != nil {
		return nil, err
	}
	missing, err := cas.FindMissing(ctx, []digest.Digest{res.Digest})
	if err != nil {
		return nil, err
	}
	if len(missing) == 0 {
		return &bspb.QueryWriteStatusResponse{CommittedSize: res.Digest.Size, Complete: true}, nil
	}
	return nil, status.Errorf(codes.NotFound, "no upload in progress for %s", name)
}
