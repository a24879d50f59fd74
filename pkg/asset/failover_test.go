package asset_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// fakeIndex answers every Lookup with ref (or NOT_FOUND when it has none)
// and records whether each call carried a fallback; with hang set it
// holds each call until its context ends, noting whether it ended as
// stalled.
type fakeIndex struct {
	asset.Index
	ref      *asset.Ref
	hang     bool
	mu       sync.Mutex
	fallback []bool
	stalled  int
}

func (f *fakeIndex) Lookup(ctx context.Context, a asset.Asset, _ time.Time) (asset.Ref, error) {
	f.mu.Lock()
	f.fallback = append(f.fallback, store.HasFallback(ctx))
	f.mu.Unlock()
	if f.hang {
		<-ctx.Done()
		f.mu.Lock()
		if store.Stalled(ctx) {
			f.stalled++
		}
		f.mu.Unlock()
		return asset.Ref{}, status.FromContextError(ctx.Err()).Err()
	}
	if f.ref == nil {
		return asset.Ref{}, status.Errorf(codes.NotFound, "%s not here", a)
	}
	return *f.ref, nil
}

func (f *fakeIndex) calls() ([]bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.fallback...), f.stalled
}

func TestFanoutFailover(t *testing.T) {
	a := asset.Asset{Kind: asset.Blob, URIs: []string{"https://example.com/a.tar"}}
	want := asset.Ref{Digest: digest.OfBytes([]byte("a")), URI: a.URIs[0]}
	for _, tc := range []struct {
		name, why   string
		hang        bool
		wantStalled int
	}{
		{"first answers NOT_FOUND", "a remote with a later one behind it gets a single attempt (no retries); the last keeps its retries", false, 0},
		{"first stalls", "a first remote that never answers is cut off after the failover delay as a stall, and the second answers", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			r1, r2 := &fakeIndex{hang: tc.hang}, &fakeIndex{ref: &want}
			local := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
			f := asset.NewFanout(local, []asset.Tier{{Name: "r1", Index: r1}, {Name: "r2", Index: r2}}, asset.FanoutOptions{FailoverDelay: time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := f.Lookup(ctx, a, time.Time{})
			if err != nil || got.Digest != want.Digest {
				t.Fatalf("Lookup = %v, %v; want r2's reference", got, err)
			}
			if fb, stalled := r1.calls(); len(fb) != 1 || !fb[0] || stalled != tc.wantStalled {
				t.Errorf("r1 calls with fallback %v, %d stalled; want [true], %d", fb, stalled, tc.wantStalled)
			}
			if fb, _ := r2.calls(); len(fb) != 1 || fb[0] {
				t.Errorf("r2 calls with fallback %v; want [false]", fb)
			}
		})
	}
}

func TestFanoutMissNamesEachRemote(t *testing.T) {
	t.Log("a miss lists every index remote's reason, labelled like the CAS and action-cache fan-outs' (one walk for all three)")
	a := asset.Asset{Kind: asset.Blob, URIs: []string{"https://example.com/a.tar"}}
	local := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
	f := asset.NewFanout(local, []asset.Tier{{Name: "r1", Index: &fakeIndex{}}, {Name: "r2", Index: &fakeIndex{}}}, asset.FanoutOptions{})
	_, err := f.Lookup(testutil.Context(t), a, time.Time{})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.NotFound || !strings.Contains(msg, "found nowhere reachable: upstream[1] r1: ") || !strings.Contains(msg, "; upstream[2] r2: ") {
		t.Fatalf("Lookup = %v; want NOT_FOUND listing upstream[1] r1 and upstream[2] r2", err)
	}
}
