package grpcservers_test

import (
	"context"
	"testing"
	"time"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/grpcservers"
)

// gauge reads a gauge castd registered on reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	n, err := promtestutil.GatherAndCount(reg, name)
	if err != nil || n != 1 {
		t.Fatalf("metric %s: %d series, %v", name, n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

func TestByteStreamStalledReadsBounded(t *testing.T) {
	// why: clients that stop reading must not make castd hold more than ReadBufferLimit; more of them wait, and all is released when they go.
	// Compressed reads count against the same limit: their chunks are as large, and zstd barely shrinks this data.
	for _, compressed := range []bool{false, true} {
		t.Run(map[bool]string{false: "identity", true: "zstd"}[compressed], func(t *testing.T) { testStalledReadsBounded(t, compressed) })
	}
}

func testStalledReadsBounded(t *testing.T, compressed bool) {
	const limit, readers = 4 << 20, 5
	mem := store.NewMemory()
	reg := prometheus.NewRegistry()
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{CAS: mem, Server: grpcservers.Options{ReadBufferLimit: limit, Registerer: reg}, Listen: testutil.ListenBufconn})
	// A fixed 64 KiB stream window (no BDP growth): a client that stops
	// reading stops the server after 64 KiB.
	conn := srv.Dial(t, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<20))
	bs := bspb.NewByteStreamClient(conn)
	data := pattern(4<<20, 40)
	d := digest.OfBytes(data)
	if err := mem.PutBytes(testutil.Context(t), d, data, store.PutHint{}); err != nil {
		t.Fatal(err)
	}

	resource := digest.ReadResourceName("", d)
	if compressed {
		resource = digest.CompressedReadResourceName("", "zstd", d)
	}
	ctx, cancel := context.WithCancel(testutil.Context(t))
	for range readers { // each would hold two 1 MiB chunks: 10 MiB without the limit
		if _, err := bs.Read(ctx, &bspb.ReadRequest{ResourceName: resource}); err != nil {
			t.Fatal(err)
		}
	}
	held, waiting := func() float64 { return gauge(t, reg, "castd_bytestream_read_buffer_bytes") },
		func() float64 { return gauge(t, reg, "castd_bytestream_read_buffer_waiters") }
	if !testutil.Poll(10*time.Second, func() bool { return held() == limit && waiting() >= 1 }) {
		t.Fatalf("stalled readers hold %v bytes with %v waiting; want the limit %d held and the rest waiting", held(), waiting(), limit)
	}
	cancel()
	if !testutil.Poll(10*time.Second, func() bool { return held() == 0 && waiting() == 0 }) {
		t.Fatalf("after the readers left, %v bytes are still held and %v reads wait", held(), waiting())
	}
	got, err := readBS(testutil.Context(t), bs, &bspb.ReadRequest{ResourceName: resource})
	if compressed && err == nil {
		got = unzstd(t, got, d.Size)
	}
	if err != nil || string(got) != string(data) {
		t.Fatalf("read after the stalled readers left: %d bytes, %v", len(got), err)
	}
}
