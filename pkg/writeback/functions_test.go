package writeback_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/writeback"
)

// sha256Only is a remote that takes SHA-256 digests only, answering the
// others as the upstream client's digest-function gate does: missing
// without asking, and writes refused with *store.UnsupportedFunctionError.
// It counts the pushes of other functions it was handed.
type sha256Only struct {
	*flakyRemote
	refused atomic.Int32
}

func (s *sha256Only) refuse(d digest.Digest) error {
	if d.Func == digest.SHA256 {
		return nil
	}
	s.refused.Add(1)
	return &store.UnsupportedFunctionError{Func: d.Func, Store: "upstream sha256"}
}

func (s *sha256Only) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	var asked, missing []digest.Digest
	for _, d := range ds {
		if d.Func == digest.SHA256 {
			asked = append(asked, d)
		} else {
			missing = append(missing, d)
		}
	}
	m, err := s.flakyRemote.FindMissing(ctx, asked)
	return append(missing, m...), err
}

func (s *sha256Only) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	if err := s.refuse(d); err != nil {
		return err
	}
	return s.flakyRemote.Put(ctx, d, r)
}

func (s *sha256Only) UpdateActionResult(ctx context.Context, action digest.Digest, ar *repb.ActionResult) error {
	if err := s.refuse(action); err != nil {
		return err
	}
	return s.flakyRemote.UpdateActionResult(ctx, action, ar)
}

// putIn stores b in m under its digest of function f.
func putIn(t *testing.T, m *store.Memory, f digest.Function, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytesIn(f, b)
	if err := m.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPushOfAnUnsupportedFunctionIsDropped(t *testing.T) {
	t.Log("a BLAKE3 blob and action result reach the remote that takes BLAKE3; to a SHA-256-only remote they are dropped at once, never retried, counted and logged once, and that remote's SHA-256 pushes go on")
	s := openStore(t, t.TempDir())
	local := store.NewMemory() // holds BLAKE3 whatever the disk store does
	ctx := context.Background()
	out := putIn(t, local, digest.BLAKE3, []byte("an output under BLAKE3"))
	b3 := putIn(t, local, digest.BLAKE3, []byte("a BLAKE3 blob"))
	sha := putIn(t, local, digest.SHA256, []byte("a SHA-256 blob"))
	action := digest.OfBytesIn(digest.BLAKE3, []byte("an action"))
	ar := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out", Digest: out.Proto()}}}
	if err := local.UpdateActionResult(ctx, action, ar); err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	q, err := writeback.Open(s.Records("writeback"), local, func(string) store.ActionCache { return local }, writeback.Options{
		BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(time.Second) })
	capable, old := newFlakyRemote(), &sha256Only{flakyRemote: newFlakyRemote()}
	q.Register("blake3", writeback.Sink{CAS: capable, ActionCache: capable})
	q.Register("sha256", writeback.Sink{CAS: old, ActionCache: old})
	targets := []writeback.Target{{Name: "blake3", Origin: policy.OriginUser}, {Name: "sha256", Origin: policy.OriginUser}}
	for _, d := range []digest.Digest{b3, sha} {
		if err := q.Enqueue(ctx, writeback.KindBlob, d, "", targets); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Enqueue(ctx, writeback.KindActionResult, action, "inst", targets); err != nil {
		t.Fatal(err)
	}
	q.Start()
	testutil.Eventually(t, "an empty queue", func() bool { return q.Stats().Depth == 0 })

	for _, d := range []digest.Digest{b3, sha, out} {
		if !capable.has(d) {
			t.Errorf("the BLAKE3-capable remote lacks %s", d)
		}
	}
	if _, err := capable.Memory.GetActionResult(ctx, action); err != nil {
		t.Errorf("the BLAKE3-capable remote lacks the action result: %v", err)
	}
	if !old.has(sha) || old.has(b3) || old.has(out) {
		t.Errorf("the SHA-256-only remote holds SHA-256 %v, BLAKE3 %v %v; want the SHA-256 blob only", old.has(sha), old.has(b3), old.has(out))
	}
	// The blob entry, and the action result's output (its first refusal
	// ends that entry): one attempt each.
	if n := old.refused.Load(); n != 2 {
		t.Errorf("the SHA-256-only remote was handed %d BLAKE3 pushes; want 2, none retried", n)
	}
	st := q.Stats().Remotes["sha256"]
	if st.Failures != 0 || len(st.Parked) != 0 || st.Completed != 1 {
		t.Errorf("sha256 remote stats %+v; want no failure, nothing parked, the SHA-256 blob completed", st)
	}
	if v := testutil.CounterSum(t, reg, "castd_writeback_dropped_total", map[string]string{"remote": "sha256", "reason": writeback.DropUnsupportedFunction}); v != 2 {
		t.Errorf("castd_writeback_dropped_total{remote=sha256,reason=unsupported-function} = %v; want 2", v)
	}
	if v := testutil.CounterSum(t, reg, "castd_writeback_dropped_total", map[string]string{"remote": "blake3"}); v != 0 {
		t.Errorf("castd_writeback_dropped_total{remote=blake3} = %v; want 0", v)
	}
	if n := logs.count("does not take this digest function"); n != 1 || logs.count("digest_function=blake3") != 1 {
		t.Errorf("%d lines about the unsupported function; want 1 naming blake3:\n%s", n, logs.buf.String())
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Errorf("%d warnings; want only the one about the function:\n%s", n, logs.buf.String())
	}
}

func TestEntriesKeepTheirFunction(t *testing.T) {
	t.Log("a queue entry keeps its digest function on disk: after a restart a BLAKE3 entry pushes the BLAKE3 blob, and a record written before castd knew functions (no Func) is SHA-256")
	dir := t.TempDir()
	s := openStore(t, dir)
	local := store.NewMemory()
	content := []byte("the same bytes under two functions")
	b3 := putIn(t, local, digest.BLAKE3, content)
	sha := putIn(t, local, digest.SHA256, content)
	other := putIn(t, local, digest.SHA256, []byte("a blob queued by an older castd"))

	// A record as castd wrote it before digest functions: no Func.
	old := fmt.Sprintf(`{"k":1,"d":{"Hash":%q,"Size":%d},"r":"remote","t":"2026-01-02T03:04:05Z"}`, other.Hash, other.Size)
	if err := s.Records("writeback").Put(binary.BigEndian.AppendUint64(nil, 1), []byte(old)); err != nil {
		t.Fatal(err)
	}
	open := func() *writeback.Queue {
		q, err := writeback.Open(s.Records("writeback"), local, func(string) store.ActionCache { return local }, writeback.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	q := open()
	q.Register("remote", writeback.Sink{CAS: newFlakyRemote()}) // never started: nothing is pushed
	if err := q.Enqueue(context.Background(), writeback.KindBlob, b3, "", userTarget); err != nil {
		t.Fatal(err)
	}
	if d := q.Stats().Depth; d != 2 {
		t.Fatalf("depth %d; want the old record and the new entry", d)
	}
	if left := closeWithin(t, q, time.Second); left != 2 {
		t.Fatalf("Close left %d entries; want 2", left)
	}

	q = open()
	remote := newFlakyRemote()
	q.Register("remote", writeback.Sink{CAS: remote, ActionCache: remote})
	q.Start()
	t.Cleanup(func() { q.Close(time.Second) })
	testutil.Eventually(t, "both entries pushed", func() bool { return q.Stats().Depth == 0 })
	if !remote.has(b3) || remote.has(sha) {
		t.Errorf("remote holds BLAKE3 %v, SHA-256 %v of the restarted entry; want BLAKE3 only", remote.has(b3), remote.has(sha))
	}
	if !remote.has(other) {
		t.Error("the old record's SHA-256 blob was not pushed")
	}
}

func TestDirectoryAssetPushesItsTreeUnderItsFunction(t *testing.T) {
	t.Log("the content of a BLAKE3 directory asset is read as BLAKE3: its Directory and file blobs reach the remote before the association")
	s := openStore(t, t.TempDir())
	local := store.NewMemory()
	ctx := context.Background()
	file := putIn(t, local, digest.BLAKE3, []byte("a file of the tree"))
	sub, subBytes, err := digest.OfMessageIn(digest.BLAKE3, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: file.Proto()}}})
	if err != nil {
		t.Fatal(err)
	}
	putIn(t, local, digest.BLAKE3, subBytes)
	root, rootBytes, err := digest.OfMessageIn(digest.BLAKE3, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "d", Digest: sub.Proto()}}})
	if err != nil {
		t.Fatal(err)
	}
	putIn(t, local, digest.BLAKE3, rootBytes)

	q, err := writeback.Open(s.Records("writeback"), local, func(string) store.ActionCache { return local }, writeback.Options{})
	if err != nil {
		t.Fatal(err)
	}
	remote := newFlakyRemote()
	idx := &recordingIndex{remote: remote}
	q.Register("remote", writeback.Sink{CAS: remote, Assets: idx})
	q.Start()
	t.Cleanup(func() { q.Close(time.Second) })
	a := asset.Asset{Kind: asset.Directory, URIs: []string{"https://example.com/tree.tar"}}
	if err := q.EnqueueAsset(ctx, a, asset.Ref{Digest: root}, userTarget); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "an empty queue", func() bool { return q.Stats().Depth == 0 })
	if len(idx.recorded()) != 1 {
		t.Fatalf("%d associations recorded; want 1 (stats %+v)", len(idx.recorded()), q.Stats())
	}
	for _, d := range []digest.Digest{root, sub, file} {
		if !remote.has(d) {
			t.Errorf("the remote lacks %s", d)
		}
	}
}
