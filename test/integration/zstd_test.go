package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/uuid"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/pkg/digest"
)

// zstdWrite uploads data through castd's compressed-blobs ByteStream in
// 1 MiB requests of compressed bytes.
func zstdWrite(ctx context.Context, conn *grpc.ClientConn, d digest.Digest, z []byte) error {
	stream, err := bspb.NewByteStreamClient(conn).Write(ctx)
	if err != nil {
		return err
	}
	name := digest.CompressedWriteResourceName("", uuid.NewString(), "zstd", d)
	for off := 0; ; {
		end := min(off+1<<20, len(z))
		req := &bspb.WriteRequest{WriteOffset: int64(off), Data: z[off:end], FinishWrite: end == len(z)}
		if off == 0 {
			req.ResourceName = name
		}
		if err := stream.Send(req); err != nil || end == len(z) {
			break
		}
		off = end
	}
	resp, err := stream.CloseAndRecv()
	if err == nil && resp.GetCommittedSize() != int64(len(z)) {
		err = fmt.Errorf("committed_size %d, want %d compressed bytes", resp.GetCommittedSize(), len(z))
	}
	return err
}

// zstdRead reads d through castd's compressed-blobs ByteStream and
// returns the compressed bytes.
func zstdRead(ctx context.Context, conn *grpc.ClientConn, d digest.Digest) ([]byte, error) {
	stream, err := bspb.NewByteStreamClient(conn).Read(ctx, &bspb.ReadRequest{ResourceName: digest.CompressedReadResourceName("", "zstd", d)})
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetData()...)
	}
}

func TestZstdThroughPushAndPullCastd(t *testing.T) {
	// Why: a client speaking zstd to one castd, which pushes to an upstream
	// castd, and a second castd pulling from that upstream: the blob makes
	// the whole trip compressed on every link (the upstream receives and
	// sends far fewer bytes than the blob has) and arrives intact.
	up := startPlainUpstream(t)
	lw, lr := newLayout(t), newLayout(t)
	_, wconn, wctl := startWorkstation(t, lw, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", up.serverYAML("all", true)))
	_, rconn, _ := startWorkstation(t, lr, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", up.serverYAML("all", false)))
	ctx := ctxFor(t, time.Minute)

	blob := bytes.Repeat([]byte("compressible build output, line after line\n"), 200000) // 8.8 MB
	d := digest.OfBytes(blob)
	z := compression.Encode(repb.Compressor_ZSTD, nil, blob)
	if err := zstdWrite(ctx, wconn, d, z); err != nil {
		t.Fatalf("compressed write to the pushing castd: %v", err)
	}
	drained(t, wctl, 1)
	if !up.has(t, d.Proto()) {
		t.Fatal("the upstream lacks the blob after the push queue drained")
	}
	got, err := zstdRead(ctx, rconn, d)
	if err != nil {
		t.Fatalf("compressed read from the pulling castd: %v", err)
	}
	plain, err := compression.Decode(repb.Compressor_ZSTD, got, d.Size, codes.DataLoss)
	if err != nil || !bytes.Equal(plain, blob) {
		t.Fatalf("the compressed read decodes to %d bytes, %v; want the blob", len(plain), err)
	}
	metrics := scrape(t, up.metricsURL())
	in := metricValue(t, metrics, `castd_bytes_received_total{service="bytestream"}`)
	out := metricValue(t, metrics, `castd_bytes_sent_total{service="bytestream"}`)
	if in <= 0 || in > float64(len(blob)/10) || out <= 0 || out > float64(len(blob)/10) {
		t.Fatalf("the upstream received %.0f and sent %.0f ByteStream bytes for a %d-byte blob; want both compressed (under a tenth)", in, out, len(blob))
	}
}
