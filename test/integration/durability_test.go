package integration_test

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestEvictionAtSmallQuota(t *testing.T) {
	t.Log("the store never grows past its quota and evicts least recently used blobs first")
	const quota = 4 << 20
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML("cache:\n  quota: 4M\n"))
	conn := dialUnix(t, p.socket)
	ctx := context.Background()

	var written []blob
	for i := 0; i < 40; i++ { // 40 × 256 KiB = 10 MiB
		b := randomBlob(256 << 10)
		if err := bytestreamWrite(ctx, conn, b); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		written = append(written, b)
		if used := storeBytes(t, p); used > quota {
			t.Fatalf("after write %d castd_store_bytes = %d, over the %d quota", i, used, quota)
		}
	}
	t.Run("recent blobs kept", func(t *testing.T) {
		t.Log("the last 1 MiB written is well under the low watermark and must survive")
		recent := written[len(written)-4:]
		var ds []*repb.Digest
		for _, b := range recent {
			ds = append(ds, b.d)
		}
		missing, err := findMissing(ctx, conn, ds...)
		if err != nil || len(missing) != 0 {
			t.Fatalf("recent blobs missing: %v (err %v)", missing, err)
		}
		for _, b := range recent {
			if got, err := readBlob(ctx, conn, b.d); err != nil || !bytes.Equal(got, b.data) {
				t.Errorf("recent blob %s: %d bytes, err %v", b.d.GetHash(), len(got), err)
			}
		}
	})
	t.Run("oldest blobs evicted", func(t *testing.T) {
		t.Log("10 MiB through a 4 MiB store: the first writes must be gone, and reported NOT_FOUND")
		missing, err := findMissing(ctx, conn, written[0].d, written[1].d)
		if err != nil || len(missing) != 2 {
			t.Fatalf("oldest blobs: missing %v (err %v), want both missing", missing, err)
		}
		if _, err := readBlob(ctx, conn, written[0].d); !isNotFound(err) {
			t.Errorf("read of evicted blob: %v, want NOT_FOUND", err)
		}
		if n := metricValue(t, scrape(t, p.metricsURL()), "castd_store_evictions_total"); n < 1 {
			t.Errorf("castd_store_evictions_total = %v, want > 0", n)
		}
	})
}

// storeBytes is castd_store_bytes from p's /metrics.
func storeBytes(t *testing.T, p *castdProc) int64 {
	t.Helper()
	return int64(metricValue(t, scrape(t, p.metricsURL()), "castd_store_bytes"))
}

// metricValue finds an unlabelled sample of name in a text exposition.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s value %q: %v", name, m[1], err)
	}
	return v
}

// drainTimeout mirrors castd's bound on draining in-flight calls.
const drainTimeout = 10 * time.Second

func TestSIGTERMDuringUpload(t *testing.T) {
	tests := []struct {
		name       string
		why        string
		finish     bool // the client completes its upload after the signal
		wantStored bool
	}{
		{
			name:       "upload finishes during drain",
			why:        "an in-flight write is allowed to complete, is acknowledged and survives the restart",
			finish:     true,
			wantStored: true,
		},
		{
			name: "upload abandoned",
			why:  "a client that never finishes cannot hold shutdown past the drain time; nothing partial is stored",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			l := newLayout(t)
			cfg := l.configYAML("")
			p := startCastd(t, l, cfg)
			conn := dialUnix(t, p.socket)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			b := randomBlob(3 << 20)
			half := len(b.data) / 2
			name := uploadName(b)
			stream, err := bspb.NewByteStreamClient(conn).Write(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&bspb.WriteRequest{ResourceName: name, Data: b.data[:half]}); err != nil {
				t.Fatal(err)
			}
			waitCommitted(t, conn, name, int64(half))
			watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if hs, err := watch.Recv(); err != nil || hs.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health before the signal = %v, %v; want SERVING", hs.GetStatus(), err)
			}

			p.signal(syscall.SIGTERM)
			if _, err := p.logs.waitFor(regexp.MustCompile(`shutting down`), p.exited, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			// A client watching health (as gRPC's client-side health
			// checking does) hears that castd drains and sends no new work.
			if hs, err := watch.Recv(); err != nil || hs.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("health during drain = %v, %v; want NOT_SERVING", hs.GetStatus(), err)
			}
			// ... and then the watch ends, so it does not hold the drain open.
			if _, err := watch.Recv(); status.Code(err) != codes.Canceled {
				t.Fatalf("watch after NOT_SERVING: %v, want it ended (Canceled) at once", err)
			}
			start := time.Now()
			if tt.finish {
				if err := stream.Send(&bspb.WriteRequest{WriteOffset: int64(half), Data: b.data[half:], FinishWrite: true}); err != nil {
					t.Fatalf("sending the rest during drain: %v", err)
				}
				resp, err := stream.CloseAndRecv()
				if err != nil || resp.GetCommittedSize() != b.d.GetSizeBytes() {
					t.Fatalf("finishing the upload during drain: committed %d, err %v", resp.GetCommittedSize(), err)
				}
			}
			if code := p.wait(drainTimeout + 10*time.Second); code != 0 {
				t.Fatalf("exit code after SIGTERM = %d, want 0", code)
			}
			if d := time.Since(start); d > drainTimeout+5*time.Second {
				t.Errorf("shutdown took %v, want within the %v drain time", d, drainTimeout)
			}
			if !strings.Contains(p.logs.String(), "castd stopped") {
				t.Errorf("no clean-stop log line")
			}

			p2 := startCastd(t, l, cfg)
			got, err := readBlob(context.Background(), dialUnix(t, p2.socket), b.d)
			switch {
			case tt.wantStored && (err != nil || !bytes.Equal(got, b.data)):
				t.Errorf("blob after restart: %d bytes, err %v; want all %d", len(got), err, len(b.data))
			case !tt.wantStored && !isNotFound(err):
				t.Errorf("abandoned blob after restart: %d bytes, err %v; want NOT_FOUND", len(got), err)
			}
		})
	}
}

// waitCommitted polls QueryWriteStatus until the server has taken at least
// n bytes of the upload, so a signal sent next hits a write in progress.
func waitCommitted(t *testing.T, conn *grpc.ClientConn, name string, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		resp, err := bspb.NewByteStreamClient(conn).QueryWriteStatus(context.Background(), &bspb.QueryWriteStatusRequest{ResourceName: name})
		if err == nil && resp.GetCommittedSize() >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload %s: committed %d (err %v), want >= %d", name, resp.GetCommittedSize(), err, n)
		}
	}
}
