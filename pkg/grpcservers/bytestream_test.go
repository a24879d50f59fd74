package grpcservers_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/uuid"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/grpcservers"
)

// writeChunks sends data from offset in chunks of size n, with finish_write
// on the last when finish is set, and returns the stream's answer.
func writeChunks(ctx context.Context, bs bspb.ByteStreamClient, name string, data []byte, offset int64, n int, finish bool) (*bspb.WriteResponse, error) {
	stream, err := bs.Write(ctx)
	if err != nil {
		return nil, err
	}
	first := true
	for off := offset; ; off += int64(n) {
		end := min(off+int64(n), int64(len(data)))
		req := &bspb.WriteRequest{WriteOffset: off, Data: data[off:end], FinishWrite: finish && end == int64(len(data))}
		if first {
			req.ResourceName, first = name, false
		}
		if err := stream.Send(req); err != nil {
			break // the server answered early; CloseAndRecv has its answer
		}
		if end == int64(len(data)) {
			break
		}
	}
	return stream.CloseAndRecv()
}

// readAll reads a resource through ByteStream.
func readBS(ctx context.Context, bs bspb.ByteStreamClient, req *bspb.ReadRequest) ([]byte, error) {
	stream, err := bs.Read(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetData()...)
	}
}

func uploadName(d digest.Digest) string {
	return digest.WriteResourceName("main", uuid.NewString(), d)
}

func TestByteStreamWriteThenRead(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	data := pattern(3<<20+123, 7)
	d := digest.OfBytes(data)
	resp, err := writeChunks(testutil.Context(t), e.bs, uploadName(d), data, 0, 700<<10, true)
	if err != nil || resp.GetCommittedSize() != d.Size {
		t.Fatalf("write: %v, committed %d", err, resp.GetCommittedSize())
	}
	name := digest.ReadResourceName("main", d)
	tests := []struct {
		name          string
		why           string
		offset, limit int64
		want          []byte
	}{
		{"whole blob", "several 1 MiB messages reassemble the blob", 0, 0, data},
		{"offset", "resuming a read skips the prefix", 1<<20 + 5, 0, data[1<<20+5:]},
		{"offset and limit", "a limit caps the bytes sent", 10, 2 << 20, data[10 : 10+2<<20]},
		{"limit past the end", "a limit beyond the blob is not an error", d.Size - 3, 100, data[d.Size-3:]},
		{"offset at the end", "reading zero bytes at the end is allowed", d.Size, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			got, err := readBS(testutil.Context(t), e.bs, &bspb.ReadRequest{ResourceName: name, ReadOffset: tc.offset, ReadLimit: tc.limit})
			if err != nil || string(got) != string(tc.want) {
				t.Fatalf("read %d bytes, err %v; want %d bytes (%s)", len(got), err, len(tc.want), tc.why)
			}
		})
	}
}

func TestByteStreamReadErrors(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	d := e.put(t, []byte("0123456789"))
	absent := digest.OfBytes([]byte("absent"))
	tests := []struct {
		name string
		why  string
		req  *bspb.ReadRequest
		code codes.Code
	}{
		{"offset past the end", "clients must not read beyond the blob", &bspb.ReadRequest{ResourceName: digest.ReadResourceName("", d), ReadOffset: 11}, codes.OutOfRange},
		{"negative offset", "offsets count from 0", &bspb.ReadRequest{ResourceName: digest.ReadResourceName("", d), ReadOffset: -1}, codes.OutOfRange},
		{"negative limit", "a negative limit is an error, not 'unlimited'", &bspb.ReadRequest{ResourceName: digest.ReadResourceName("", d), ReadLimit: -1}, codes.OutOfRange},
		{"missing blob", "NOT_FOUND is the only miss", &bspb.ReadRequest{ResourceName: digest.ReadResourceName("", absent)}, codes.NotFound},
		{"upload name", "an uploads/ name is not readable", &bspb.ReadRequest{ResourceName: uploadName(d)}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			_, err := readBS(testutil.Context(t), e.bs, tc.req)
			wantCode(t, err, tc.code, "")
		})
	}
}

func TestByteStreamWriteRejects(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	data := pattern(5000, 9)
	d := digest.OfBytes(data)
	hash := d.Hash
	tests := []struct {
		name     string
		why      string
		resource string
		data     []byte
		substr   string
	}{
		{"wrong bytes", "bytes must hash to the digest", uploadName(d), pattern(5000, 10), ""},
		{"too many bytes", "more bytes than the size is rejected before hashing", uploadName(d), pattern(5001, 9), "size"},
		{"too few bytes", "finish_write short of the size is rejected", uploadName(d), data[:4999], "finish_write"},
		{"short hash", "hash length is checked", "main/uploads/u1/blobs/" + hash[:63] + "/5000", data, "resource_name"},
		{"non-hex hash", "hash characters are checked", "main/uploads/u1/blobs/" + "g" + hash[1:] + "/5000", data, "resource_name"},
		{"negative size", "sizes are checked", "main/uploads/u1/blobs/" + hash + "/-5000", data, "resource_name"},
		{"dot-dot segment", "path tricks are refused", "main/../uploads/u1/blobs/" + hash + "/5000", data, "resource_name"},
		{"missing size", "every part is required", "main/uploads/u1/blobs/" + hash, data, "resource_name"},
		{"missing uuid", "uploads need their id", "main/uploads/blobs/" + hash + "/5000", data, "resource_name"},
		{"wrong keyword", "only uploads/ names are writable", "main/downloads/u1/blobs/" + hash + "/5000", data, "resource_name"},
		{"read name", "a read name is not an upload name", digest.ReadResourceName("main", d), data, "resource_name"},
		{"empty name", "the first request must name the resource", "", data, "resource_name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			_, err := writeChunks(testutil.Context(t), e.bs, tc.resource, tc.data, 0, 1024, true)
			wantCode(t, err, codes.InvalidArgument, tc.substr)
			if e.has(t, d) {
				t.Fatal("a rejected upload was stored")
			}
		})
	}
}

func TestByteStreamWriteExisting(t *testing.T) {
	// why: REAPI lets the server answer early so that the client stops sending.
	e := newEnv(t, grpcservers.Options{})
	data := pattern(2<<20, 4)
	d := e.put(t, data)
	stream, err := e.bs.Write(testutil.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&bspb.WriteRequest{ResourceName: uploadName(d), Data: data[:1024]}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetCommittedSize() != d.Size {
		t.Fatalf("got %v, committed %d; want committed %d", err, resp.GetCommittedSize(), d.Size)
	}
	st, err := e.bs.QueryWriteStatus(testutil.Context(t), &bspb.QueryWriteStatusRequest{ResourceName: uploadName(d)})
	if err != nil || !st.GetComplete() || st.GetCommittedSize() != d.Size {
		t.Fatalf("QueryWriteStatus = %v, %v; want complete", st, err)
	}
}
