package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestShutdownContext(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("one budget", func(t *testing.T) {
		// Why: the drain and the write-back queue share drainTimeout, less
		// what closing the store needs, so the whole stop fits in it.
		ctx, cancel := shutdownContext(make(chan os.Signal), log)
		defer cancel()
		dl, ok := ctx.Deadline()
		if !ok {
			t.Fatal("shutdown context has no deadline")
		}
		if left := time.Until(dl); left > drainTimeout-closeMargin || left <= 0 {
			t.Errorf("deadline in %v, want within (0, %v]", left, drainTimeout-closeMargin)
		}
	})
	t.Run("second signal", func(t *testing.T) {
		// Why: an operator's second SIGTERM ends the drain and the queue's
		// pushes at once instead of being ignored.
		sigs := make(chan os.Signal, 1)
		ctx, cancel := shutdownContext(sigs, log)
		defer cancel()
		sigs <- syscall.SIGTERM
		select {
		case <-ctx.Done():
			if ctx.Err() != context.Canceled {
				t.Errorf("context ended with %v, want Canceled by the signal", ctx.Err())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a second signal did not end the shutdown budget")
		}
	})
}
