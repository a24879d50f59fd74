package grpcclient_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/grpcclient"
)

// compressionLog counts, at a remote, the transfers that came compressed
// and those that came identity.
type compressionLog struct {
	mu                           sync.Mutex
	zstdStreams, identityStreams int // ByteStream reads and writes by resource name
	zstdEntries, identityEntries int // BatchUpdateBlobs entries by compressor
	acceptingReads, plainReads   int // BatchReadBlobs calls with and without zstd acceptable
	stripZstd                    bool
}

func (l *compressionLog) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	l.mu.Lock()
	switch r := req.(type) {
	case *repb.BatchUpdateBlobsRequest:
		for _, e := range r.GetRequests() {
			if e.GetCompressor() == repb.Compressor_ZSTD {
				l.zstdEntries++
			} else {
				l.identityEntries++
			}
		}
	case *repb.BatchReadBlobsRequest:
		if len(r.GetAcceptableCompressors()) > 0 {
			l.acceptingReads++
		} else {
			l.plainReads++
		}
	}
	l.mu.Unlock()
	resp, err := h(ctx, req)
	if c, ok := resp.(*repb.ServerCapabilities); ok && l.stripZstd {
		// A remote of another make that speaks identity only.
		c.CacheCapabilities.SupportedCompressors = nil
		c.CacheCapabilities.SupportedBatchUpdateCompressors = nil
	}
	return resp, err
}

func (l *compressionLog) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &namedStream{ServerStream: ss, l: l})
}

// namedStream notes the resource name of a ByteStream call's first message.
type namedStream struct {
	grpc.ServerStream
	l    *compressionLog
	seen bool
}

func (s *namedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	name := ""
	switch r := m.(type) {
	case *bspb.ReadRequest:
		name = r.GetResourceName()
	case *bspb.WriteRequest:
		name = r.GetResourceName()
	}
	if err == nil && name != "" && !s.seen {
		s.seen = true
		s.l.mu.Lock()
		if strings.Contains(name, "/compressed-blobs/zstd/") || strings.HasPrefix(name, "compressed-blobs/zstd/") {
			s.l.zstdStreams++
		} else {
			s.l.identityStreams++
		}
		s.l.mu.Unlock()
	}
	return err
}

func TestTransfersAreCompressedOnlyToZstdRemotes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		why    string
		zstd   bool // the remote advertises ZSTD
		socket bool // on a Unix socket
		off    bool // dialled WithCompression(false)
		want   bool // transfers go compressed
	}{
		{"zstd remote", "castd saves WAN bandwidth toward a remote that advertises ZSTD", true, false, false, true},
		{"identity remote", "a remote that does not advertise ZSTD gets identity only", false, false, false, false},
		{"zstd remote on a unix socket", "a socket has no bandwidth to save (bst to castd): identity, not CPU spent on zstd", true, true, false, false},
		{"zstd remote with compression off", "cache.remotes.compression: off makes a remote advertising ZSTD get identity (a fast link where zstd costs more CPU than it saves)", true, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			log := &compressionLog{stripZstd: !tc.zstd}
			sc := serverConfig{unary: log.unary, stream: log.stream}
			url := "grpc://"
			if tc.socket {
				sc.unix, url = true, "unix:"
			}
			ts := startServer(t, sc)
			cas := dial(t, grpcclient.Config{URL: url + ts.addr, InstanceName: "main"}, grpcclient.WithCompression(!tc.off)).CAS()
			text := bytes.Repeat([]byte("a compressible line of build output\n"), 100000) // 3.6 MB: ByteStream
			small := text[:20000]                                                         // batch
			for _, b := range [][]byte{text, small} {
				d := put(t, cas, b)
				if got, err := readAll(cas, d, 0); err != nil || !bytes.Equal(got, b) {
					t.Fatalf("%d bytes: read back %d bytes, %v", len(b), len(got), err)
				}
				if held := ts.mem.GetMany(context.Background(), []digest.Digest{d})[0].Data; !bytes.Equal(held, b) {
					t.Fatalf("%d bytes: the remote does not hold the blob uncompressed", len(b))
				}
			}
			// A GetMany of the small blob goes through one batch read.
			if r := cas.GetMany(context.Background(), []digest.Digest{digest.OfBytes(small)}); r[0].Err != nil || !bytes.Equal(r[0].Data, small) {
				t.Fatalf("GetMany: %v", r[0].Err)
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if tc.want {
				if log.zstdStreams != 2 || log.identityStreams != 0 || log.zstdEntries != 1 || log.identityEntries != 0 || log.plainReads != 0 || log.acceptingReads != 2 {
					t.Fatalf("streams zstd %d identity %d, batch entries zstd %d identity %d, batch reads accepting %d plain %d; want everything compressed",
						log.zstdStreams, log.identityStreams, log.zstdEntries, log.identityEntries, log.acceptingReads, log.plainReads)
				}
				return
			}
			if log.zstdStreams != 0 || log.identityStreams != 2 || log.zstdEntries != 0 || log.identityEntries != 1 || log.acceptingReads != 0 || log.plainReads != 2 {
				t.Fatalf("streams zstd %d identity %d, batch entries zstd %d identity %d, batch reads accepting %d plain %d; want identity only",
					log.zstdStreams, log.identityStreams, log.zstdEntries, log.identityEntries, log.acceptingReads, log.plainReads)
			}
		})
	}
}

// breakingStream fails a compressed Read stream after its second message
// with UNAVAILABLE, once, and notes the read offsets asked for.
type breakingStream struct {
	grpc.ServerStream
	b    *streamBreaker
	sent int
}

type streamBreaker struct {
	mu      sync.Mutex
	broken  bool
	offsets []int64
	names   []string
}

func (b *streamBreaker) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &breakingStream{ServerStream: ss, b: b})
}

func (s *breakingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if r, ok := m.(*bspb.ReadRequest); ok && err == nil {
		s.b.mu.Lock()
		s.b.offsets, s.b.names = append(s.b.offsets, r.GetReadOffset()), append(s.b.names, r.GetResourceName())
		s.b.mu.Unlock()
	}
	return err
}

func (s *breakingStream) SendMsg(m any) error {
	// castd's server sends ReadResponses wrapped around lent buffers
	// (grpcservers' readChunk), so match what they carry, not their type.
	if _, ok := m.(interface{ GetData() []byte }); ok {
		s.sent++
		s.b.mu.Lock()
		breakNow := !s.b.broken && s.sent == 3
		s.b.broken = s.b.broken || breakNow
		s.b.mu.Unlock()
		if breakNow {
			return status.Error(codes.Unavailable, "link dropped")
		}
	}
	return s.ServerStream.SendMsg(m)
}

func TestCompressedReadResumesAfterBreak(t *testing.T) {
	t.Log("a compressed stream that breaks with UNAVAILABLE is read again, compressed, from the next uncompressed byte, and the blob is verified whole")
	b := &streamBreaker{}
	ts := startServer(t, serverConfig{stream: b.stream})
	blob, _ := randomBlob(21, 5<<20+9) // noise: about as many compressed bytes, several messages
	d := put(t, ts.mem, blob)
	r := dial(t, grpcclient.Config{URL: "grpc://" + ts.addr, RetryLimit: 1}, grpcclient.WithClock(newFakeClock()))
	got, err := readAll(r.CAS(), d, 0)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("read = %d bytes, %v; want the blob", len(got), err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.offsets) != 2 || b.offsets[0] != 0 || b.offsets[1] <= 0 || b.offsets[1] >= d.Size {
		t.Fatalf("read offsets %v; want 0, then where the break left off", b.offsets)
	}
	for _, n := range b.names {
		if !strings.Contains(n, "compressed-blobs/zstd/") {
			t.Fatalf("read %q is not compressed", n)
		}
	}
}
