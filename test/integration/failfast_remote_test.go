package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refusedFirst is a first remote nothing listens on, configured with a
// retry delay of an hour: had any of its retries run on a client's
// request path, that request would wait at least half an hour (the
// backoff's jitter is ±50%), far past the deadlines below.
const refusedFirst = "{url: grpc://127.0.0.1:1, type: storage, push: false, connection-config: {retry-limit: 4, retry-delay: 3600000}}"

func TestFailfastRefusedFirstRemote(t *testing.T) {
	good := startPlainUpstream(t)
	l := newLayout(t)
	p, conn, _ := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n  - %s\n", refusedFirst, good.serverYAML("storage", false)))
	ctx := ctxFor(t, 2*time.Minute)
	small, large := randomBlob(4<<10), randomBlob(3<<20)
	for _, b := range []blob{small, large} {
		if err := bytestreamWrite(ctx, good.conn(t), b); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, why string
		call      func(ctx context.Context) error
	}{
		{"FindMissing", "the refused remote is asked once and skipped; the second answers present", func(ctx context.Context) error {
			missing, err := findMissing(ctx, conn, small.d, large.d)
			if err == nil && len(missing) > 0 {
				return fmt.Errorf("%d reported missing", len(missing))
			}
			return err
		}},
		{"BatchRead", "a small blob comes from the second remote without waiting on the first's retries", func(ctx context.Context) error {
			resp, err := repb.NewContentAddressableStorageClient(conn).BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{small.d}})
			if err != nil {
				return err
			}
			r := resp.GetResponses()[0]
			if c := codes.Code(r.GetStatus().GetCode()); c != codes.OK || !bytes.Equal(r.GetData(), small.data) {
				return fmt.Errorf("entry: %v %s", c, r.GetStatus().GetMessage())
			}
			return nil
		}},
		{"ByteStream read", "a large blob streams from the second remote without waiting on the first's retries", func(ctx context.Context) error {
			got, err := readBlob(ctx, conn, large.d)
			if err == nil && !bytes.Equal(got, large.data) {
				err = fmt.Errorf("read %d bytes, not the blob", len(got))
			}
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			if err := tc.call(ctxFor(t, 2*time.Minute)); err != nil {
				t.Fatalf("%s through castd: %v", tc.name, err)
			}
		})
	}
	t.Run("state change logged", func(t *testing.T) {
		t.Log("the refused remote's state change is a warning naming its url, role and code")
		re := regexp.MustCompile(`upstream: remote state changed.*url=grpc://127\.0\.0\.1:1 role=cas state=down code=Unavailable`)
		if _, ok := p.logs.find(re); !ok {
			t.Errorf("no state-change warning for the refused remote in:\n%s", p.logs)
		}
	})
}

func TestFailfastDownRemoteNotReportedPresent(t *testing.T) {
	up := startPlainUpstream(t)
	l := newLayout(t)
	_, conn, _ := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", up.serverYAML("storage", false)))
	ctx := ctxFor(t, 2*time.Minute)
	b := randomBlob(4 << 10)
	if err := batchUpdate(ctx, up.conn(t), b); err != nil {
		t.Fatal(err)
	}
	if missing, err := findMissing(ctx, conn, b.d); err != nil || len(missing) != 0 {
		t.Fatalf("FindMissing while the remote is up: %v, %v; want present", missing, err)
	}
	up.kill9()
	t.Run("read keeps the failure's code", func(t *testing.T) {
		t.Log("with the only remote down the read fails UNAVAILABLE (retryable), not NOT_FOUND")
		_, err := readBlob(ctx, conn, b.d)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("read with the remote down: %v; want UNAVAILABLE", err)
		}
	})
	t.Run("no longer reported present", func(t *testing.T) {
		t.Log("after a read found the remote unreachable, its cached 'present' answers stop counting")
		missing, err := findMissing(ctx, conn, b.d)
		if err != nil || len(missing) != 1 {
			t.Fatalf("FindMissing with the remote down: %v, %v; want the blob missing", missing, err)
		}
	})
}
