package proxy

import (
	"context"
	"io"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Write receives a blob chunk by chunk into an upload (see upload_session.go)
// whose store.Put verifies and commits it. A broken stream leaves the upload
// open for UploadIdleTimeout so that the client can resume it.
func (s *byteStreamServer) Write(stream bspb.ByteStream_WriteServer) error {
	ctx := stream.Context()
	req, err := stream.Recv()
	if err == io.EOF {
		return status.Error(codes.InvalidArgument, "write stream closed before its first request")
	} else if err != nil {
		return err
	}
	res, err := parseUploadResource(req.GetResourceName())
	if err != nil {
		return err
	}
	cas, err := s.backend.CAS(ctx, res.Instance)
	if err != nil {
		return err
	}
	name := digest.WriteResourceName(res.Instance, res.UploadID, res.Digest)
	up, err := s.open(ctx, cas, name, res.Digest, req.GetWriteOffset())
	if err != nil {
		return err
	}
	if up != nil {
		if err := up.attach(ctx); err != nil {
			return err
		}
		defer s.uploads.detach(up)
		if err := s.receive(stream, up, req); err != nil {
			return err
		}
	}
	return stream.SendAndClose(&bspb.WriteResponse{CommittedSize: res.Digest.Size})
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

// open returns the upload to continue, or nil when the blob already exists
// and the client may stop sending (REAPI lets the server answer early).
func (s *byteStreamServer) open(ctx context.Context, cas store.CAS, name string, d digest.Digest, offset int64) (*upload, error) {
	if up := s.uploads.get(name); up != nil && (offset != 0 || up.committed.Load() == 0) {
		return up, nil
	}
	missing, err := cas.FindMissing(ctx, []digest.Digest{d})
	if err != nil {
		return nil, err
	}
	if len(missing) == 0 {
		return nil, nil
	}
	return s.uploads.start(name, d, cas), nil
}

// receive feeds requests to up until finish_write or the blob is known to be
// stored; nil means it is stored.
func (s *byteStreamServer) receive(stream bspb.ByteStream_WriteServer, up *upload, req *bspb.WriteRequest) error {
	first := req.GetResourceName()
	for {
		if n := req.GetResourceName(); n != "" && n != first {
			return status.Errorf(codes.InvalidArgument, "resource_name %q differs from the stream's first %q", n, first)
		}
		done, err := s.chunk(stream.Context(), up, req)
		if done || err != nil {
			return err
		}
		req, err = stream.Recv()
		if err == io.EOF {
			return status.Errorf(codes.InvalidArgument, "write stream for %s closed before finish_write; resume from committed_size %d", up.name, up.committed.Load())
		} else if err != nil {
			return err
		}
	}
}

// chunk applies one WriteRequest; done reports that the upload is over.
func (s *byteStreamServer) chunk(ctx context.Context, up *upload, req *bspb.WriteRequest) (done bool, err error) {
	committed, data := up.committed.Load(), req.GetData()
	if req.GetWriteOffset() != committed {
		return false, status.Errorf(codes.InvalidArgument, "write_offset %d, but %d bytes of %s are committed", req.GetWriteOffset(), committed, up.name)
	}
	if committed+int64(len(data)) > up.digest.Size {
		s.uploads.abort(up, status.Error(codes.InvalidArgument, "too many bytes"))
		return true, status.Errorf(codes.InvalidArgument, "data: %d bytes past offset %d exceed the blob size %d", len(data), committed, up.digest.Size)
	}
	if err := up.write(data); err != nil {
		return true, s.result(ctx, up, up.wait(ctx)) // Put returned early
	}
	s.metrics.received.WithLabelValues(serviceByteStream).Add(float64(len(data)))
	if !req.GetFinishWrite() {
		return false, nil
	}
	if committed+int64(len(data)) != up.digest.Size {
		s.uploads.abort(up, status.Error(codes.InvalidArgument, "short upload"))
		return true, status.Errorf(codes.InvalidArgument, "finish_write after %d bytes, but the blob size is %d", committed+int64(len(data)), up.digest.Size)
	}
	return true, s.result(ctx, up, up.finish(ctx))
}

// result forgets up once Put has answered; an upload interrupted only by
// the client's context stays registered for resumption.
func (s *byteStreamServer) result(ctx context.Context, up *upload, err error) error {
	if ctx.Err() == nil {
		s.uploads.forget(up)
	}
	return err
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
		select {
		case <-up.done:
		default:
			return &bspb.QueryWriteStatusResponse{CommittedSize: up.committed.Load()}, nil
		}
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
