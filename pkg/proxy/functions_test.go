package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/proxy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/grpcclient"
	"github.com/castd/castd/pkg/writeback"
)

// putBlobIn stores random bytes of size n in cas under their digest of
// function f and returns them.
func putBlobIn(t *testing.T, cas store.CAS, f digest.Function, n int) ([]byte, digest.Digest) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	d := digest.OfBytesIn(f, data)
	if err := cas.Put(context.Background(), d, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put %s: %v", d, err)
	}
	return data, d
}

// remoteName is the name castd gives the remote at u: its HOST:PORT.
func remoteName(u *upstreamServer) string { return strings.TrimPrefix(u.url, "grpc://") }

// blobCalls is the calls that carry blobs or ask about them that u
// answered.
func blobCalls(t *testing.T, u *upstreamServer) int {
	n := 0
	for _, m := range []string{"FindMissingBlobs", "BatchUpdateBlobs", "BatchReadBlobs", "Read", "Write"} {
		n += u.calls(t, m)
	}
	return n
}

func TestBLAKE3PushReachesOnlyARemoteThatTakesIt(t *testing.T) {
	t.Log("a BLAKE3 blob a client writes is pushed to the push remote that advertises BLAKE3; the SHA-256-only one is never sent it, the queue drains without retries and the drop is counted")
	capable := newUpstream(t)
	old := newUpstreamWith(t, grpcservers.Options{DigestFunctions: digest.SetOf(digest.SHA256)})
	reg := prometheus.NewRegistry()
	set, _ := newSetWith(t, t.TempDir(), fmt.Sprintf(`
artifacts:
  servers:
  - {url: %s, type: all, push: true}
  - {url: %s, type: all, push: true}
`, capable.url, old.url), proxy.Options{Registerer: reg})
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, small := putBlobIn(t, cas, digest.BLAKE3, 3000)
	_, large := putBlobIn(t, cas, digest.BLAKE3, 3<<20)
	_, sha := putBlobIn(t, cas, digest.SHA256, 2000)
	testutil.Eventually(t, "an empty queue", func() bool { return set.Queue().Depth == 0 })

	for _, d := range []digest.Digest{small, large, sha} {
		if !capable.has(d) {
			t.Errorf("the BLAKE3-capable remote lacks %s", d)
		}
	}
	if !old.has(sha) || old.has(small) || old.has(large) {
		t.Errorf("the SHA-256-only remote holds SHA-256 %v, BLAKE3 %v %v; want the SHA-256 blob only", old.has(sha), old.has(small), old.has(large))
	}
	// The SHA-256 blob's push: a FindMissingBlobs and a BatchUpdateBlobs.
	// Nothing about the BLAKE3 blobs, which the server would refuse.
	if n := blobCalls(t, old); n != 2 {
		t.Errorf("the SHA-256-only remote answered %d blob calls; want 2, for the SHA-256 blob", n)
	}
	st := set.Queue().Remotes[remoteName(old)]
	if st.Failures != 0 || len(st.Parked) != 0 || st.Completed != 1 {
		t.Errorf("the SHA-256-only remote's queue stats are %+v; want no failure, nothing parked, 1 completed", st)
	}
	if v := testutil.CounterSum(t, reg, "castd_writeback_dropped_total", map[string]string{"remote": remoteName(old), "reason": writeback.DropUnsupportedFunction}); v != 2 {
		t.Errorf("castd_writeback_dropped_total{reason=unsupported-function} = %v for the SHA-256-only remote; want 2", v)
	}
	if v := testutil.CounterSum(t, reg, "castd_upstream_requests_total", map[string]string{"remote": remoteName(old), "code": codes.InvalidArgument.String()}); v != 0 {
		t.Errorf("%v upstream calls to the SHA-256-only remote were refused; want none", v)
	}
}

func TestBLAKE3ReadAsksOnlyRemotesThatTakeIt(t *testing.T) {
	t.Log("a BLAKE3 read that misses locally asks only the remotes that advertise BLAKE3: a SHA-256-only remote in front is passed over without a call or a failure")
	old := newUpstreamWith(t, grpcservers.Options{DigestFunctions: digest.SetOf(digest.SHA256)})
	capable := newUpstream(t)
	reg := prometheus.NewRegistry()
	set, _ := newSetWith(t, t.TempDir(), fmt.Sprintf(`
artifacts:
  servers:
  - {url: %s, type: storage, push: false}
  - {url: %s, type: storage, push: false}
`, old.url, capable.url), proxy.Options{Registerer: reg})
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, size := range []int{3000, 3 << 20} {
		data, d := putBlobIn(t, capable.mem, digest.BLAKE3, size)
		rc, err := cas.Get(ctx, d, 0)
		if err != nil {
			t.Fatalf("Get %s: %v", d, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes, %v; want the blob", len(got), err)
		}
	}
	_, gone := func() ([]byte, digest.Digest) {
		b := []byte("a BLAKE3 blob no remote has")
		return b, digest.OfBytesIn(digest.BLAKE3, b)
	}()
	if _, err := cas.Get(ctx, gone, 0); status.Code(err) != codes.NotFound {
		t.Errorf("Get of a BLAKE3 blob no remote has = %v; want NOT_FOUND", err)
	}
	if r := cas.GetMany(ctx, []digest.Digest{gone})[0]; status.Code(r.Err) != codes.NotFound {
		t.Errorf("GetMany of a BLAKE3 blob no remote has = %v; want NOT_FOUND", r.Err)
	}
	if missing, err := cas.FindMissing(ctx, []digest.Digest{gone}); err != nil || len(missing) != 1 {
		t.Errorf("FindMissing = %v, %v; want it missing", missing, err)
	}

	if n := blobCalls(t, old); n != 0 {
		t.Errorf("the SHA-256-only remote answered %d blob calls; want none", n)
	}
	if blobCalls(t, capable) == 0 {
		t.Error("the BLAKE3-capable remote was not asked")
	}
	if v := testutil.CounterSum(t, reg, "castd_upstream_requests_total", map[string]string{"remote": remoteName(old), "code": codes.InvalidArgument.String()}); v != 0 {
		t.Errorf("%v upstream calls to the SHA-256-only remote were refused; want none", v)
	}
}

func TestExistenceCacheKeepsFunctionsApart(t *testing.T) {
	t.Log("a remote's existence cache remembers a SHA-256 digest as present; a BLAKE3 digest with the same hex and size is another blob, not answered from it")
	up := newUpstream(t)
	set, _ := newSet(t, t.TempDir(), fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: storage, push: false}\n", up.url))
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, sha := putBlob(t, up.mem, 1000)
	if missing, err := cas.FindMissing(ctx, []digest.Digest{sha}); err != nil || len(missing) != 0 {
		t.Fatalf("FindMissing(SHA-256) = %v, %v; want present", missing, err)
	}
	twin := digest.Digest{Hash: sha.Hash, Size: sha.Size, Func: digest.BLAKE3}
	if missing, err := cas.FindMissing(ctx, []digest.Digest{twin}); err != nil || len(missing) != 1 {
		t.Errorf("FindMissing(BLAKE3 twin) = %v, %v; want it missing", missing, err)
	}
}

func TestStatusDoesNotCountUnsupportedFunctionsAsMisses(t *testing.T) {
	t.Log("a read of a digest function the remote does not take is no miss of that remote in Status: it was not asked")
	old := newUpstreamWith(t, grpcservers.Options{DigestFunctions: digest.SetOf(digest.SHA256)})
	up, err := grpcclient.Dial(context.Background(), grpcclient.Config{URL: old.url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	cas, counts := proxy.NewStatusRecordingCAS(up.CAS())
	ctx := context.Background()
	b3 := digest.OfBytesIn(digest.BLAKE3, []byte("not on a SHA-256-only remote"))
	if _, err := cas.Get(ctx, b3, 0); status.Code(err) != codes.NotFound {
		t.Fatalf("Get = %v; want NOT_FOUND", err)
	}
	if r := cas.GetMany(ctx, []digest.Digest{b3})[0]; status.Code(r.Err) != codes.NotFound {
		t.Fatalf("GetMany = %v; want NOT_FOUND", r.Err)
	}
	if hits, misses := counts(); hits != 0 || misses != 0 {
		t.Errorf("hits, misses = %d, %d; want 0, 0", hits, misses)
	}
}
