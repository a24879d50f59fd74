package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestWriteThroughCAS(t *testing.T) {
	ctx := context.Background()
	data := []byte("written through")
	d := digest.OfBytes(data)
	writes := []struct {
		name string
		hint store.PutHint
		put  func(store.CAS) error
	}{
		{"Put", store.PutHint{}, func(c store.CAS) error { return c.Put(ctx, d, bytes.NewReader(data)) }},
		{"PutWith", store.PutHint{Uncached: true}, func(c store.CAS) error {
			return c.PutWith(ctx, d, bytes.NewReader(data), store.PutHint{Uncached: true})
		}},
		{"PutBytes", store.PutHint{Verified: true}, func(c store.CAS) error {
			return c.PutBytes(ctx, d, data, store.PutHint{Verified: true})
		}},
	}
	for _, w := range writes {
		t.Run(w.name+" reaches both", func(t *testing.T) {
			t.Log("every write method stores the blob on primary too, and on base with the caller's hint")
			base, primary := testutil.NewHintLog(store.NewMemory()), store.NewMemory()
			if err := w.put(store.NewWriteThroughCAS(base, primary, "primary.example")); err != nil {
				t.Fatal(err)
			}
			if m, err := primary.FindMissing(ctx, []digest.Digest{d}); err != nil || len(m) != 0 {
				t.Errorf("primary lacks the blob (missing %v, %v)", m, err)
			}
			if got := base.PutHints(); len(got) != 1 || got[0] != w.hint {
				t.Errorf("base saw hints %+v; want [%+v]", got, w.hint)
			}
		})
		t.Run(w.name+" fails with primary", func(t *testing.T) {
			t.Log("a write is acknowledged only once primary has it; primary's failure keeps its code and says where")
			down := &observedCAS{mem: store.NewMemory()}
			down.down.Store(true)
			err := w.put(store.NewWriteThroughCAS(store.NewMemory(), store.WithGenericFastPaths(down), "primary.example"))
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "primary.example: storing "+d.String()) {
				t.Errorf("write with primary down: %v; want UNAVAILABLE naming primary.example", err)
			}
		})
	}
}
