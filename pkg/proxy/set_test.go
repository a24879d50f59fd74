package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/proxy"
)

func TestPullOrder(t *testing.T) {
	first, second := newUpstream(t), newUpstream(t)
	set, _ := newSet(t, t.TempDir(), fmt.Sprintf(`
artifacts:
  servers:
  - {url: %s, type: storage, push: false}
  - {url: %s, type: storage, push: false}
`, first.url, second.url))
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, why string
		in        *upstreamServer
	}{
		{name: "first remote hit", why: "the first remote in pull order serves what it has", in: first},
		{name: "second remote hit", why: "a blob only the second remote has is still found", in: second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			data, d := putBlob(t, tc.in.mem, 3000)
			rc, err := cas.Get(context.Background(), d, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != string(data) {
				t.Fatalf("read %d bytes, %v; want the blob", len(got), err)
			}
		})
	}
}

func TestUnknownInstance(t *testing.T) {
	// A client must register its project before using a run-time name;
	// the error says how, with a code clients do not retry.
	set, _ := newSet(t, t.TempDir(), "log-level: info\n")
	_, err := set.CAS(context.Background(), "p/nope-123")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "register the project") {
		t.Fatalf("CAS(unknown) = %v, want INVALID_ARGUMENT telling to register", err)
	}
}

func TestPushOnlyToUserRemotes(t *testing.T) {
	user, project := newUpstream(t), newUpstream(t)
	dir := t.TempDir()
	set, _ := newSet(t, dir, fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: all, push: true}\n", user.url))
	conf := fmt.Sprintf("name: demo\nartifacts:\n- {url: %s, type: all, push: true}\n", project.url)
	inst, report, err := set.RegisterProject(context.Background(), "", []byte(conf), dir)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := set.RegisterProject(context.Background(), "", []byte(conf), dir)
	if err != nil || again != inst || !strings.HasPrefix(inst, "p/demo-") || len(report) == 0 {
		t.Fatalf("RegisterProject = %q then %q (%v); want one stable p/demo-… name and a report", inst, again, err)
	}
	cas, err := set.CAS(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, why string
		write     func(t *testing.T) (userHas func() bool)
	}{
		{name: "client write", why: "a write is pushed to the user's push remote and never to the project's", write: func(t *testing.T) func() bool {
			_, d := putBlob(t, cas, 2000)
			return func() bool { return user.has(d) }
		}},
		{name: "re-cached project content", why: "a blob the project remote served is copied to the user's push remote", write: func(t *testing.T) func() bool {
			_, d := putBlob(t, project.mem, 2500)
			rc, err := cas.Get(context.Background(), d, 0)
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
			return func() bool { return user.has(d) }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			userHas := tc.write(t)
			testutil.Eventually(t, "the push to the user remote", userHas)
			testutil.Eventually(t, "an empty queue", func() bool { return set.Queue().Depth == 0 })
		})
	}
	t.Run("project remote untouched", func(t *testing.T) {
		// Why: nothing castd stored may reach a project-recommended remote.
		_, d := putBlob(t, cas, 100)
		testutil.Eventually(t, "the push", func() bool { return user.has(d) && set.Queue().Depth == 0 })
		if project.has(d) {
			t.Fatal("a client write reached the project-recommended remote")
		}
	})
}

func TestStorageServiceMode(t *testing.T) {
	// With cache.storage-service the remote CAS is the primary store: it
	// is asked first and a write returns only once it is stored there.
	primary, other := newUpstream(t), newUpstream(t)
	set, _ := newSet(t, t.TempDir(), fmt.Sprintf("cache:\n  storage-service: {url: %s}\nartifacts:\n  servers:\n  - {url: %s, type: storage, push: false}\n", primary.url, other.url))
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("put", func(t *testing.T) {
		// Why: ByteStream writes use Put; no waiting for a background push.
		_, d := putBlob(t, cas, 300_000)
		if !primary.has(d) {
			t.Fatal("Put returned before the storage service had the blob")
		}
		if depth := set.Queue().Depth; depth != 0 {
			t.Errorf("queue depth %d: a written-through blob was queued for the storage service as well", depth)
		}
	})
	t.Run("put bytes", func(t *testing.T) {
		// Why: BatchUpdateBlobs uses the in-memory path.
		data := []byte("batch-updated blob")
		d := digest.OfBytes(data)
		if err := cas.PutBytes(context.Background(), d, data, store.PutHint{}); err != nil {
			t.Fatal(err)
		}
		if !primary.has(d) {
			t.Fatal("PutBytes returned before the storage service had the blob")
		}
	})
	t.Run("not pushed elsewhere", func(t *testing.T) {
		// Why: a remote with push: false gets nothing.
		_, d := putBlob(t, cas, 100)
		if other.has(d) {
			t.Error("a write reached a remote without push")
		}
	})
	if rs := set.Remotes(); len(rs) != 2 || rs[0].URL != primary.url || !rs[0].Push {
		t.Errorf("remotes %+v: want the storage service first, with push", rs)
	}
}

func TestStorageServiceRefuses(t *testing.T) {
	// A write the primary store did not take is not acknowledged: the
	// client gets the storage service's error, its code kept, naming it.
	addr := serveCAS(t, store.WithGenericFastPaths(refusingCAS{store.NewMemory()}))
	set, _ := newSet(t, t.TempDir(), fmt.Sprintf("cache:\n  storage-service: {url: grpc://%s}\n", addr))
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("nobody stores this")
	d := digest.OfBytes(data)
	for name, put := range map[string]func() error{
		"put":       func() error { return cas.Put(context.Background(), d, bytes.NewReader(data)) },
		"put bytes": func() error { return cas.PutBytes(context.Background(), d, data, store.PutHint{}) },
	} {
		err := put()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "cache.storage-service "+addr) {
			t.Errorf("%s = %v, want PERMISSION_DENIED naming cache.storage-service %s", name, err, addr)
		}
	}
}

// refusingCAS is a CAS whose writes are refused, like a remote the
// credentials do not allow writing to.
type refusingCAS struct{ store.BasicCAS }

func (refusingCAS) Put(context.Context, digest.Digest, io.Reader) error {
	return status.Error(codes.PermissionDenied, "this remote is read-only")
}

// serveCAS serves cas as an REAPI server on a loopback port until t ends.
func serveCAS(t *testing.T, cas store.CAS) string {
	t.Helper()
	return testutil.StartREAPI(t, testutil.REAPIOptions{CAS: cas, ActionCache: func(string) store.ActionCache { return store.NewMemory() }}).Addr
}

func TestBatchReadThroughRemotes(t *testing.T) {
	// Reads through an instance keep the batch fast path down to the
	// upstream client: misses come back from the remote in one batch and
	// are stored locally, hits and misses per entry.
	up := newUpstream(t)
	set, local := newSet(t, t.TempDir(), fmt.Sprintf(`
artifacts:
  servers:
  - {url: %s, type: storage, push: false}
`, up.url))
	cas, err := set.CAS(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	a, da := putBlob(t, up.mem, 100)
	b, db := putBlob(t, up.mem, 200)
	absent := digest.OfBytes([]byte("nowhere"))
	rs := cas.GetMany(context.Background(), []digest.Digest{da, absent, db})
	if string(rs[0].Data) != string(a) || string(rs[2].Data) != string(b) || status.Code(rs[1].Err) != codes.NotFound {
		t.Fatalf("GetMany = %v / %v / %v", rs[0].Err, rs[1].Err, rs[2].Err)
	}
	if got := up.calls(t, "BatchReadBlobs"); got != 1 {
		t.Errorf("upstream answered %d BatchReadBlobs calls (and %d ByteStream reads), want the misses in 1 batch", got, up.calls(t, "Read"))
	}
	if m, err := local.FindMissing(context.Background(), []digest.Digest{da, db}); err != nil || len(m) != 0 {
		t.Fatalf("not stored locally: missing %v, %v", m, err)
	}
}

func TestStatusRecordingCASCountsFastPaths(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	held := testutil.Put(t, mem, []byte("held"))
	absent := digest.OfBytes([]byte("absent"))
	for _, tc := range []struct {
		name, why          string
		call               func(store.CAS)
		wantHits, wantMiss int64
	}{
		{"GetWith hit", "a hinted read (the fan-out's stream from a remote) is a hit like Get",
			func(c store.CAS) {
				rc, err := c.GetWith(ctx, held, 0, store.GetHint{ConsumerVerifies: true})
				if err != nil {
					t.Fatal(err)
				}
				rc.Close()
			}, 1, 0},
		{"GetWith miss", "a hinted read the remote lacks is a miss like Get",
			func(c store.CAS) { _, _ = c.GetWith(ctx, absent, 0, store.GetHint{ConsumerVerifies: true}) }, 0, 1},
		{"GetMany", "a batch read is recorded once",
			func(c store.CAS) { c.GetMany(ctx, []digest.Digest{held}) }, 1, 0},
		{"writes", "writes are neither hits nor misses, whichever method",
			func(c store.CAS) {
				data := []byte("written")
				if err := c.PutBytes(ctx, digest.OfBytes(data), data, store.PutHint{}); err != nil {
					t.Fatal(err)
				}
			}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			cas, counts := proxy.NewStatusRecordingCAS(mem)
			tc.call(cas)
			if hits, misses := counts(); hits != tc.wantHits || misses != tc.wantMiss {
				t.Errorf("hits, misses = %d, %d; want %d, %d", hits, misses, tc.wantHits, tc.wantMiss)
			}
		})
	}
}
