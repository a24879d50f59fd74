package fanout_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

func TestConcurrencyLimitingCAS(t *testing.T) {
	t.Run("slot held until Close", func(t *testing.T) {
		t.Log("a download occupies its slot for its whole length, so the next call waits for Close")
		d, _ := blob("x")
		log := &callLog{}
		base := &countingCAS{BasicCAS: memoryWith(t, "x"), name: "base", log: log}
		limited := fanout.NewConcurrencyLimitingCAS(store.WithGenericFastPaths(base), 1)
		first, err := limited.Get(context.Background(), d, 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := readAll(context.Background(), limited, d, 0); done <- err }()
		log.add("first closed")
		first.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got, want := log.get(), []string{"base.Get", "first closed", "base.Get"}; !slices.Equal(got, want) {
			t.Errorf("calls %q, want %q", got, want)
		}
	})
	t.Run("waiter gives up", func(t *testing.T) {
		t.Log("a caller queued for a slot can leave with its own cancellation")
		d, _ := blob("x")
		base := &countingCAS{BasicCAS: memoryWith(t, "x"), name: "base", log: &callLog{}}
		limited := fanout.NewConcurrencyLimitingCAS(store.WithGenericFastPaths(base), 1)
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
		if n := len(base.requests()); n != 0 {
			t.Errorf("base FindMissing calls = %d, want 0", n)
		}
	})
}
