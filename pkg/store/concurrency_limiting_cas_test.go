package store_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// limitedOne returns a CAS over a memory store holding "x", limited to one
// call at once, with the digest of "x" and a log the base's reads are
// written to (room for 8 entries).
func limitedOne(t *testing.T) (store.CAS, *observedCAS, digest.Digest, chan string) {
	log := make(chan string, 8)
	mem, d := store.NewMemory(), digest.OfBytes([]byte("x"))
	if err := mem.Put(context.Background(), d, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	base := &observedCAS{mem: mem, onGet: func(digest.Digest) { log <- "base.Get" }}
	return store.NewConcurrencyLimitingCAS(store.WithGenericFastPaths(base), 1), base, d, log
}

func TestConcurrencyLimitingCAS(t *testing.T) {
	t.Run("slot held until Close", func(t *testing.T) {
		t.Log("a download occupies its slot for its whole length, so the next call waits for Close")
		limited, _, d, log := limitedOne(t)
		first, err := limited.Get(context.Background(), d, 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			rc, err := limited.Get(context.Background(), d, 0)
			if err == nil {
				err = rc.Close()
			}
			done <- err
		}()
		log <- "first closed"
		first.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		close(log)
		var got []string
		for s := range log {
			got = append(got, s)
		}
		if want := []string{"base.Get", "first closed", "base.Get"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("calls %q, want %q", got, want)
		}
	})
	t.Run("waiter gives up", func(t *testing.T) {
		t.Log("a caller queued for a slot can leave with its own cancellation")
		limited, base, d, _ := limitedOne(t)
		finds := 0
		base.onFind = func([]digest.Digest) { finds++ }
		first, err := limited.Get(context.Background(), d, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := limited.FindMissing(ctx, nil); status.Code(err) != codes.Canceled {
			t.Errorf("FindMissing while full: %v, want CANCELED", err)
		}
		if finds != 0 {
			t.Errorf("base FindMissing calls = %d, want 0", finds)
		}
	})
}

func TestConcurrencyLimitingCASLimitsFastPaths(t *testing.T) {
	data := []byte("y")
	dy := digest.OfBytes(data)
	for _, tc := range []struct {
		name string
		call func(context.Context, store.CAS, digest.Digest) error
	}{
		{"GetWith", func(ctx context.Context, c store.CAS, d digest.Digest) error {
			_, err := c.GetWith(ctx, d, 0, store.GetHint{ConsumerVerifies: true})
			return err
		}},
		{"GetMany", func(ctx context.Context, c store.CAS, d digest.Digest) error {
			return c.GetMany(ctx, []digest.Digest{d})[0].Err
		}},
		{"PutWith", func(ctx context.Context, c store.CAS, _ digest.Digest) error {
			return c.PutWith(ctx, dy, bytes.NewReader(data), store.PutHint{Uncached: true})
		}},
		{"PutBytes", func(ctx context.Context, c store.CAS, _ digest.Digest) error {
			return c.PutBytes(ctx, dy, data, store.PutHint{Verified: true})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log("a fast path needs a slot like Get and Put: while a hinted download holds the only one, it waits (and may give up)")
			limited, base, d, log := limitedOne(t)
			first, err := limited.GetWith(context.Background(), d, 0, store.GetHint{ConsumerVerifies: true})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := tc.call(ctx, limited, d); status.Code(err) != codes.Canceled {
				t.Errorf("%s while the slot is held: %v; want CANCELED", tc.name, err)
			}
			first.Close()
			if n := len(log); n != 1 {
				t.Errorf("base read %d times; want only the first download", n)
			}
			if m, _ := base.mem.FindMissing(context.Background(), []digest.Digest{dy}); len(m) != 1 {
				t.Error("a write that never got a slot reached the base")
			}
			if err := tc.call(context.Background(), limited, d); err != nil {
				t.Errorf("%s once the slot is free: %v", tc.name, err)
			}
		})
	}
}
