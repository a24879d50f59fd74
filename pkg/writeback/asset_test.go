package writeback_test

import (
	"context"
	"sync"
	"testing"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/writeback"
)

// recordingIndex is a remote asset index that notes whether the content
// was on the remote when the association arrived.
type recordingIndex struct {
	remote *flakyRemote
	mu     sync.Mutex
	got    []asset.Asset
	had    bool
}

func (r *recordingIndex) Lookup(context.Context, asset.Asset, time.Time) (asset.Ref, error) {
	return asset.Ref{}, status.Error(codes.NotFound, "not used")
}

func (r *recordingIndex) Record(_ context.Context, a asset.Asset, ref asset.Ref) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
	r.had = r.remote.has(ref.Digest)
	return nil
}

func (r *recordingIndex) recorded() []asset.Asset {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]asset.Asset(nil), r.got...)
}

func TestQueueAsset(t *testing.T) {
	// A client's asset push reaches the index remote after its content,
	// with its URIs and qualifiers intact, via the queueing index.
	s := openStore(t, t.TempDir())
	remote := newFlakyRemote()
	idx := &recordingIndex{remote: remote}
	q, err := writeback.Open(s.Records("writeback"), s, s.ActionCache, writeback.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Register("remote", writeback.Sink{CAS: remote, Assets: idx})
	q.Start()
	t.Cleanup(func() { q.Close(time.Second) })
	d := putRandom(t, s, 700)
	a := asset.Asset{Kind: asset.Blob, URIs: []string{"https://example.com/a.tar"},
		Qualifiers: []*assetpb.Qualifier{{Name: "checksum.sri", Value: "sha256-x"}}}
	local := asset.NewLocalIndex(s.Records("assets"), asset.LocalOptions{})
	if err := writeback.NewQueueingIndex(local, q, userTarget).Record(context.Background(), a, asset.Ref{Digest: d}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the asset push", func() bool { return len(idx.recorded()) == 1 })
	got := idx.recorded()[0]
	if got.URIs[0] != a.URIs[0] || got.Qualifiers[0].GetValue() != "sha256-x" || !idx.had {
		t.Errorf("pushed %+v (content present first: %v), want %+v after its blob", got, idx.had, a)
	}
}
