package integration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
)

func TestDaemonDiskFull(t *testing.T) {
	fs := testutil.MountTmpfs(t, "256m")
	l := newLayout(t)
	l.store = filepath.Join(fs, "store")
	cfg := l.configYAML("") // the default reserve (5 %)
	p := startCastd(t, l, cfg)
	ctx := ctxFor(t, 2*time.Minute)
	small, large := randomBlob(2000), randomBlob(3<<20)
	conn := dialUnix(t, p.socket)
	if err := batchUpdate(ctx, conn, small); err != nil {
		t.Fatal(err)
	}
	if err := bytestreamWrite(ctx, conn, large); err != nil {
		t.Fatal(err)
	}
	readsServed := func(t *testing.T, conn *grpc.ClientConn) {
		t.Helper()
		for _, b := range []blob{small, large} {
			if got, err := readBlob(ctx, conn, b.d); err != nil || !bytes.Equal(got, b.data) {
				t.Errorf("reading a stored blob of %d bytes: got %d bytes, %v", len(b.data), len(got), err)
			}
		}
	}
	writesRefused := func(t *testing.T, conn *grpc.ClientConn, code codes.Code, words string) {
		t.Helper()
		err := bytestreamWrite(ctx, conn, randomBlob(1<<20))
		if status.Code(err) != code || !strings.Contains(err.Error(), words) {
			t.Errorf("ByteStream.Write = %v, want %v saying %q", err, code, words)
		}
		b := randomBlob(100)
		resp, err := repb.NewContentAddressableStorageClient(conn).BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{
			Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: b.d, Data: b.data}}})
		if err != nil {
			t.Fatal(err)
		}
		if st := resp.GetResponses()[0].GetStatus(); codes.Code(st.GetCode()) != code || !strings.Contains(st.GetMessage(), words) {
			t.Errorf("BatchUpdateBlobs = %v, want %v saying %q", st, code, words)
		}
	}

	free := testutil.FillFS(t, fs)
	t.Run("writes refused, reads served", func(t *testing.T) {
		t.Log("another process fills the disk: uploads get a clear error, stored blobs are still served, castd lives")
		writesRefused(t, conn, codes.ResourceExhausted, "filesystem full")
		readsServed(t, conn)
		p.waitHealthy()
		if _, ok := p.logs.find(regexp.MustCompile(`filesystem full; refusing writes`)); !ok {
			t.Error("no log line says the filesystem is full")
		}
	})
	// Each process is started here, outside the subtests: a process ends
	// with the test that started it.
	p.kill9()
	p = startCastd(t, l, cfg)
	t.Run("restart on the full disk", func(t *testing.T) {
		t.Log("killed and restarted with the disk still full, castd comes up (badger gets the ballast) instead of crash-looping")
		conn := dialUnix(t, p.socket)
		readsServed(t, conn)
		writesRefused(t, conn, codes.ResourceExhausted, "filesystem full")
		if _, ok := p.logs.find(regexp.MustCompile(`released the space held in reserve`)); !ok {
			t.Error("no log line says the ballast was released")
		}
	})
	t.Run("stopped on the full disk", func(t *testing.T) {
		t.Log("SIGTERM with the disk full: castd exits cleanly instead of faulting in badger's flush")
		p.signal(syscall.SIGTERM)
		if code := p.wait(drainTimeout + 10*time.Second); code != 0 {
			t.Errorf("castd exited %d on SIGTERM with a full disk, want 0", code)
		}
	})
	free()
	p = startCastd(t, l, cfg)
	t.Run("space back", func(t *testing.T) {
		t.Log("started with space again, castd has every blob and accepts writes")
		conn := dialUnix(t, p.socket)
		readsServed(t, conn)
		if err := batchUpdate(ctx, conn, randomBlob(100)); err != nil {
			t.Errorf("a write after space came back: %v", err)
		}
	})
	p.kill9()
	if err := os.Remove(filepath.Join(l.store, "ballast")); err != nil {
		t.Fatalf("no ballast in the store: %v", err)
	}
	defer testutil.FillFS(t, fs)()
	q := spawnCastd(t, l, cfg)
	t.Run("killed, no ballast, disk full", func(t *testing.T) {
		t.Log("with nothing to give badger and logs to replay, castd says what to free and exits (systemd retries later)")
		if code := q.wait(startTimeout); code != 1 {
			t.Errorf("castd exited %d, want 1", code)
		}
		if _, ok := q.logs.find(regexp.MustCompile(`filesystem full.*free at least \d+ MiB`)); !ok {
			t.Errorf("castd's error does not say how much to free:\n%s", q.logs)
		}
	})
}

func TestDaemonDiskFullColdReads(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	up := startPlainUpstream(t)
	small, large := randomBlob(2000), randomBlob(3<<20)
	if err := batchUpdate(ctx, up.conn(t), small); err != nil {
		t.Fatal(err)
	}
	if err := bytestreamWrite(ctx, up.conn(t), large); err != nil {
		t.Fatal(err)
	}
	fs := testutil.MountTmpfs(t, "256m")
	l := newLayout(t)
	l.store = filepath.Join(fs, "store")
	cfg := l.configYAML("artifacts:\n  servers:\n  - " + up.serverYAML("storage", false) + "\n")
	p := startCastd(t, l, cfg)
	coldReadsServed := func(t *testing.T, p *castdProc) {
		t.Helper()
		conn := dialUnix(t, p.socket)
		if got, err := readBlob(ctx, conn, large.d); err != nil || !bytes.Equal(got, large.data) {
			t.Errorf("ByteStream.Read of a remote-only blob of %d bytes: got %d bytes, %v", len(large.data), len(got), err)
		}
		if got, err := instanceRead(ctx, conn, "", small.d); err != nil || !bytes.Equal(got, small.data) {
			t.Errorf("BatchReadBlobs of a remote-only blob of %d bytes: got %d bytes, %v", len(small.data), len(got), err)
		}
		if n := metricValue(t, scrape(t, p.metricsURL()), "castd_fanout_unstored_total"); n < 2 {
			t.Errorf("castd_fanout_unstored_total = %v, want both reads counted", n)
		}
	}
	statusSays := func(t *testing.T, p *castdProc, why string) {
		t.Helper()
		var st struct {
			Store struct {
				WritesRefused *string `json:"writes_refused"`
			}
		}
		r := bst(t, p.socket, "", "status", "--json")
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("bst status --json: %v\n%s", err, r.stdout)
		}
		if st.Store.WritesRefused == nil || *st.Store.WritesRefused != why {
			t.Errorf("bst status --json store.writes_refused is not %q:\n%s", why, r.stdout)
		}
		text := bst(t, p.socket, "", "status").stdout
		if says := strings.Contains(text, "writes refused: "+why); why != "" && !says {
			t.Errorf("bst status does not say %q:\n%s", "writes refused: "+why, text)
		} else if why == "" && strings.Contains(text, "writes refused") {
			t.Errorf("bst status says writes are refused with space free:\n%s", text)
		}
	}

	statusSays(t, p, "") // not full yet: nothing refused
	testutil.FillFS(t, fs)
	t.Run("cold reads on a full disk", func(t *testing.T) {
		t.Log("blobs only a remote has are still served when the store cannot keep them, and bst status says why")
		coldReadsServed(t, p)
		statusSays(t, p, "filesystem full")
	})
	// Stopped on the full disk, castd gives up its ballast; the next start
	// finds no space for the index and opens the store read-only.
	p.signal(syscall.SIGTERM)
	if code := p.wait(drainTimeout + 10*time.Second); code != 0 {
		t.Fatalf("castd exited %d on SIGTERM with a full disk, want 0", code)
	}
	if err := os.Remove(filepath.Join(l.store, "ballast")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	free := testutil.FillFS(t, fs) // whatever the stop left free
	p = startCastd(t, l, cfg)
	t.Run("cold reads on a read-only store", func(t *testing.T) {
		t.Log("started read-only on the full disk, castd still serves remote-only blobs")
		coldReadsServed(t, p)
		statusSays(t, p, "read-only after a start on a full disk")
	})
	free()
}
