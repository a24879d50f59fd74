package fanout_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/testutil"

	"github.com/castd/castd/pkg/store/disk"
)

// fullLocal opens a real local store on a small tmpfs and fills the
// filesystem as another process would: the store refuses every write as
// "filesystem full" and serves what it holds. Mounting needs root, which
// CI has.
func fullLocal(t *testing.T) *disk.Store {
	t.Helper()
	fs := testutil.MountTmpfs(t, "256m")
	l, err := disk.Open(filepath.Join(fs, "store"), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	testutil.FillFS(t, fs)
	d, b := blob("a write to probe the full store")
	if err := l.Put(context.Background(), d, bytes.NewReader(b)); !disk.IsFull(err) {
		t.Fatalf("Put on the filled store = %v, want it refused as full", err)
	}
	return l
}

func TestColdReadsOnAFullDisk(t *testing.T) {
	local := fullLocal(t)
	ctx := context.Background()
	d, b, remote := bigBlob(t, 64*teeChunk)
	newCAS := func(t *testing.T, tiers ...store.CAS) (store.CAS, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		var ts []fanout.Tier
		for i, cas := range tiers {
			ts = append(ts, fanout.Tier{Name: "r" + string(rune('1'+i)), CAS: cas})
		}
		return fanout.NewCAS(local, ts, fanout.Options{Registerer: reg}), reg
	}
	notStored := func(t *testing.T, reg *prometheus.Registry, ds ...digest.Digest) {
		t.Helper()
		for _, d := range ds {
			if has(t, local, d) {
				t.Errorf("%s was stored on the full disk", d)
			}
		}
		if metricValue(t, reg, "castd_fanout_unstored_total", "") == 0 {
			t.Error("castd_fanout_unstored_total = 0, want the refusals counted")
		}
	}

	t.Run("stream", func(t *testing.T) {
		t.Log("a ByteStream-style read of a remote-only blob gets the remote's bytes, verified, not stored")
		r1 := &countingCAS{BasicCAS: chunkyCAS{BasicCAS: remote}, name: "r1", log: &callLog{}}
		c, reg := newCAS(t, store.WithGenericFastPaths(r1))
		if got, err := readAll(ctx, c, d, 0); err != nil || got != string(b) {
			t.Fatalf("read: %d of %d bytes, %v; want the blob", len(got), len(b), err)
		}
		notStored(t, reg, d)
		if n := r1.gets.Load(); n != 1 {
			t.Errorf("remote Gets = %d, want 1 (the stream local refused is the one the client reads)", n)
		}
	})
	t.Run("stream at an offset", func(t *testing.T) {
		t.Log("a read at an offset is served from the remote stream, hashed from its start")
		c, reg := newCAS(t, store.WithGenericFastPaths(chunkyCAS{BasicCAS: remote}))
		if got, err := readAll(ctx, c, d, 1000); err != nil || got != string(b[1000:]) {
			t.Fatalf("read at 1000: %d bytes, %v; want the blob from 1000", len(got), err)
		}
		notStored(t, reg, d)
	})
	t.Run("reads that join a fetch", func(t *testing.T) {
		t.Log("a read waiting for another's fetch, which local refused to store, reads the remote itself")
		r1 := newBlockingCAS(chunkyCAS{BasicCAS: remote})
		c, reg := newCAS(t, store.WithGenericFastPaths(r1))
		var wg sync.WaitGroup
		got, errs := make([]string, 2), make([]error, 2)
		read := func(i int) {
			defer wg.Done()
			got[i], errs[i] = readAll(ctx, c, d, 0)
		}
		wg.Add(2)
		go read(0)
		<-r1.entered
		go read(1)
		testutil.Eventually(t, "the second read to join the fetch", func() bool { return fanout.Waiting(c, d) == 2 })
		close(r1.release)
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i] != string(b) {
				t.Errorf("read %d: %d bytes, %v; want the blob", i, len(got[i]), errs[i])
			}
		}
		notStored(t, reg, d)
	})
	t.Run("batch", func(t *testing.T) {
		t.Log("GetMany and GetBytes of remote-only blobs return them, hashed by the fan-out")
		c, reg := newCAS(t, &batchCAS{CAS: memoryWith(t, "one", "two")})
		ds := names("one", "two", "one")
		for i, r := range c.GetMany(ctx, ds) {
			if want := []string{"one", "two", "one"}[i]; r.Err != nil || string(r.Data) != want {
				t.Errorf("GetMany[%d] = %q, %v; want %q", i, r.Data, r.Err, want)
			}
		}
		one, _ := blob("one")
		if got, err := store.ReadBytes(ctx, c, one); err != nil || string(got) != "one" {
			t.Errorf("GetBytes = %q, %v; want \"one\"", got, err)
		}
		notStored(t, reg, ds...)
	})
	t.Run("corrupt stream", func(t *testing.T) {
		t.Log("bad remote bytes still end the read in DATA_LOSS before the client has them all")
		c, _ := newCAS(t, store.WithGenericFastPaths(chunkyCAS{BasicCAS: corruptCAS{remote}}))
		got, err := readAll(ctx, c, d, 0)
		if status.Code(err) != codes.DataLoss || len(got) >= len(b) {
			t.Fatalf("read: %d of %d bytes, %v; want fewer bytes and DATA_LOSS", len(got), len(b), err)
		}
	})
	t.Run("corrupt stream, good second remote", func(t *testing.T) {
		t.Log("a small blob the first remote serves bad is read from the next one")
		small, sb := blob("small and remote-only")
		m := memoryWith(t, "small and remote-only")
		c, reg := newCAS(t, store.WithGenericFastPaths(corruptCAS{m}), m)
		if got, err := readAll(ctx, c, small, 0); err != nil || got != string(sb) {
			t.Fatalf("read: %q, %v; want the second remote's copy", got, err)
		}
		if metricValue(t, reg, "castd_fanout_bad_data_total", "r1") == 0 {
			t.Error("the first remote's bad bytes were not counted")
		}
	})
	t.Run("corrupt batch", func(t *testing.T) {
		t.Log("a batch entry whose bytes do not match is never returned; the next remote's copy is")
		one, _ := blob("one")
		bad := &batchCAS{CAS: memoryWith(t, "one"), corrupt: true}
		c, _ := newCAS(t, bad)
		if r := c.GetMany(ctx, []digest.Digest{one})[0]; r.Err == nil || r.Data != nil {
			t.Errorf("GetMany from a corrupt remote = %q, %v; want an error", r.Data, r.Err)
		}
		c, _ = newCAS(t, bad, &batchCAS{CAS: memoryWith(t, "one")})
		if r := c.GetMany(ctx, []digest.Digest{one})[0]; r.Err != nil || string(r.Data) != "one" {
			t.Errorf("GetMany = %q, %v; want the second remote's copy", r.Data, r.Err)
		}
	})
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes, for a log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func TestFullDiskRefusalsLoggedOncePerMinute(t *testing.T) {
	t.Log("a full disk refuses every cold read: the refusal is logged once a minute with a count, not once per read")
	local := fullLocal(t)
	ctx := context.Background()
	clock := clock.NewFake(time.Unix(1e9, 0))
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	remote := memoryWith(t, "a", "b", "c")
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: remote}}, fanout.Options{
		Clock: clock, Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	const line = "local store refuses to store"
	for i, s := range []string{"a", "b"} {
		d, _ := blob(s)
		if got, err := readAll(ctx, c, d, 0); err != nil || got != s {
			t.Fatalf("read %q: %q, %v", s, got, err)
		}
		if n := logs.count(line); n != 1 {
			t.Errorf("after %d cold reads: %d log lines about the refusal, want 1", i+1, n)
		}
	}
	clock.Advance(time.Minute)
	d, _ := blob("c")
	if got, err := readAll(ctx, c, d, 0); err != nil || got != "c" {
		t.Fatalf("read \"c\": %q, %v", got, err)
	}
	if n := logs.count(line); n != 2 {
		t.Errorf("a minute later: %d log lines about the refusal, want 2", n)
	}
	if n := logs.count("refused_since_last_report=2"); n != 1 {
		t.Errorf("the second line should count the 2 refusals since the first: %q", logs.buf.String())
	}
	if v := metricValue(t, reg, "castd_fanout_unstored_total", ""); v != 3 {
		t.Errorf("castd_fanout_unstored_total = %v, want 3", v)
	}
}
