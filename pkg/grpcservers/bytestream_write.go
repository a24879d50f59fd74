package grpcservers

import (
	"context"
	"io"

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
	res, err := parseUploadResource(req.GetResourceName())
	if err != nil {
		return err
	}
	cas, err := s.backend.CAS(stream.Context(), res.Instance)
	if err != nil {
		return err
	}
	if whole(req, res.Digest) {
		if err := s.putWhole(stream.Context(), cas, res.Digest, req.GetData()); err != nil {
			return err
		}
	} else if err := s.writeUpload(stream.Context(), recv, cas, res, req); err != nil {
		return err
	}
	return stream.SendAndClose(&bspb.WriteResponse{CommittedSize: res.Digest.Size})
}

// whole reports that req, a stream's first, carries the entire blob.
func whole(req *bspb.WriteRequest, d digest.Digest) bool {
	return req.GetFinishWrite() && req.GetWriteOffset() == 0 && int64(len(req.GetData())) == d.Size
}

// putWhole stores a blob that arrived in one request, without a spool file.
func (s *byteStreamServer) putWhole(ctx context.Context, cas store.CAS, d digest.Digest, data []byte) error {
	if err := cas.PutBytes(ctx, d, data, store.PutHint{}); err != nil {
		return err
	}
	s.metrics.received.WithLabelValues(serviceByteStream).Add(float64(len(data)))
	return nil
}

// writeUpload continues or starts the upload named by res and feeds it the
// stream's requests; nil means the blob is stored.
func (s *byteStreamServer) writeUpload(ctx context.Context, recv *receiver, cas store.CAS, res digest.Resource, req *bspb.WriteRequest) error {
	name := digest.WriteResourceName(res.Instance, res.UploadID, res.Digest)
	up, err := s.open(ctx, cas, name, res.Digest, req.GetWriteOffset())
	if up == nil || err != nil {
		return err
	}
	defer s.uploads.detach(up)
	return s.receive(ctx, recv, cas, up, req)
}

// parseUploadResource parses a write resource name, rejecting compressors
// castd does not advertise.
func parseUploadResource(name string) (digest.Resource, error) {
	res, err := digest.ParseWriteResource(name)
	if err == nil && res.Compressor != "" {
		err = status.Errorf(codes.InvalidArgument, "resource_name: compressor %q is not supported", res.Compressor)
	}
	return res, err
}

// open returns the upload to continue, attached to the calling stream, or
// nil when the blob is stored and the client may stop sending (REAPI lets
// the server answer early).
func (s *byteStreamServer) open(ctx context.Context, cas store.CAS, name string, d digest.Digest, offset int64) (*upload, error) {
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
	return s.uploads.start(name, d)
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

// chunk appends one WriteRequest's data to up.
func (s *byteStreamServer) chunk(up *upload, req *bspb.WriteRequest) error {
	committed, data := up.committed(), req.GetData()
	if req.GetWriteOffset() != committed {
		return status.Errorf(codes.InvalidArgument, "write_offset %d, but %d bytes of %s are committed", req.GetWriteOffset(), committed, up.name)
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
	res, err := parseUploadResource(req.GetResourceName())
	if err != nil {
		return nil, err
	}
	name := digest.WriteResourceName(res.Instance, res.UploadID, res.Digest)
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
