package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
)

func TestAssetsPushAndPull(t *testing.T) {
	user, other := newUpstream(t), newUpstream(t)
	set, _ := newSet(t, t.TempDir(), fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: all, push: true}\n  - {url: %s, type: all, push: false}\n", user.url, other.url))
	idx, cas, err := set.Assets(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, why string
		run       func(t *testing.T)
	}{
		{name: "client push", why: "a client's asset push is queued and lands on the user's push remote with its blob", run: func(t *testing.T) {
			_, d := putBlob(t, cas, 900)
			a := asset.Asset{Kind: asset.Blob, URIs: []string{"https://example.com/src.tar"}}
			if err := idx.Record(context.Background(), a, asset.Ref{Digest: d}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "the asset on the user remote", func() bool {
				ref, err := user.assets.Lookup(context.Background(), a, time.Time{})
				return err == nil && ref.Digest == d && user.has(d)
			})
		}},
		{name: "second remote hit", why: "an asset only the second index remote knows is found, its blob fetched", run: func(t *testing.T) {
			_, d := putBlob(t, other.mem, 400)
			a := asset.Asset{Kind: asset.Blob, URIs: []string{"https://example.com/other.tar"}}
			if err := other.assets.Record(context.Background(), a, asset.Ref{Digest: d}); err != nil {
				t.Fatal(err)
			}
			ref, err := idx.Lookup(context.Background(), a, time.Time{})
			if err != nil || ref.Digest != d {
				t.Fatalf("Lookup = %v, %v; want %s", ref, err, d)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			tc.run(t)
		})
	}
}
