package grpcservers_test

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/uuid"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"

	"github.com/castd/castd/pkg/digest"
)

// largeBlobSize is 256 MiB with CASTD_BENCH_LARGE=1, else 32 MiB.
func largeBlobSize() int64 {
	if os.Getenv("CASTD_BENCH_LARGE") != "" {
		return 256 << 20
	}
	return 32 << 20
}

// largeBlob is a blob of size bytes made of one random 1 MiB chunk repeated,
// whose first 8 bytes are its id, so that blobs are distinct but cost only
// one chunk of memory each.
type largeBlob struct {
	d     digest.Digest
	first []byte
	rest  []byte
}

func newLargeBlob(base []byte, id uint64, size int64) largeBlob {
	first := slices.Clone(base)
	for i := range 8 {
		first[i] = byte(id >> (8 * i))
	}
	h := digest.NewHasher()
	for off := int64(0); off < size; off += chunkLen {
		h.Write(pick(first, base, off)[:min(chunkLen, size-off)])
	}
	return largeBlob{d: digest.Digest{Hash: digest.HashString(h), Size: size}, first: first, rest: base}
}

const chunkLen = 1 << 20

func pick(first, rest []byte, off int64) []byte {
	if off == 0 {
		return first
	}
	return rest
}

func (l largeBlob) write(ctx context.Context, bs bspb.ByteStreamClient) error {
	stream, err := bs.Write(ctx)
	if err != nil {
		return err
	}
	for off := int64(0); off < l.d.Size; off += chunkLen {
		n := min(chunkLen, l.d.Size-off)
		req := &bspb.WriteRequest{WriteOffset: off, Data: pick(l.first, l.rest, off)[:n], FinishWrite: off+n == l.d.Size}
		if off == 0 {
			req.ResourceName = digest.WriteResourceName("", uuid.NewString(), l.d)
		}
		if err := stream.Send(req); err != nil {
			break
		}
	}
	resp, err := stream.CloseAndRecv()
	if err == nil && resp.GetCommittedSize() != l.d.Size {
		err = errors.New("short commit")
	}
	return err
}

func BenchmarkByteStreamWrite(b *testing.B) {
	e := newBenchEnv(b)
	size := largeBlobSize()
	base := newBlobSource(3).buf[:chunkLen]
	blobs := make([]largeBlob, b.N)
	for i := range blobs {
		blobs[i] = newLargeBlob(base, uint64(i)+uint64(time.Now().UnixNano()), size)
	}
	b.SetBytes(size)
	e.run(b, min(benchClients, b.N), func(conn *grpc.ClientConn, i int) error {
		return blobs[i].write(context.Background(), bspb.NewByteStreamClient(conn))
	})
}

func BenchmarkByteStreamRead(b *testing.B) {
	e := newBenchEnv(b)
	size := largeBlobSize()
	base := newBlobSource(4).buf[:chunkLen]
	blobs := make([]largeBlob, benchClients)
	for i := range blobs {
		blobs[i] = newLargeBlob(base, uint64(i), size)
		if err := blobs[i].write(context.Background(), bspb.NewByteStreamClient(e.conns[0])); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(size)
	e.run(b, min(benchClients, b.N), func(conn *grpc.ClientConn, i int) error {
		stream, err := bspb.NewByteStreamClient(conn).Read(context.Background(),
			&bspb.ReadRequest{ResourceName: digest.ReadResourceName("", blobs[i%len(blobs)].d)})
		if err != nil {
			return err
		}
		var n int64
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				break
			} else if err != nil {
				return err
			}
			n += int64(len(resp.GetData()))
		}
		if n != size {
			return errors.New("short read")
		}
		return nil
	})
}

func BenchmarkGetActionResult(b *testing.B) {
	e := newBenchEnv(b)
	outs := e.preload(b, 3)
	action := digest.OfBytes([]byte("bench action")).Proto()
	ac := repb.NewActionCacheClient(e.conns[0])
	ar := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "a", Digest: outs[0]}, {Path: "b", Digest: outs[1]}}, StdoutDigest: outs[2]}
	if _, err := ac.UpdateActionResult(context.Background(), &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: ar}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	e.run(b, 1, func(_ *grpc.ClientConn, i int) error {
		start := time.Now()
		_, err := ac.GetActionResult(context.Background(), &repb.GetActionResultRequest{ActionDigest: action})
		lat[i] = time.Since(start)
		return err
	})
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}
