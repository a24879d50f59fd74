package disk_test

import (
	"context"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalActionCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openStore(t, dir, disk.Options{})
	action := digest.OfBytes([]byte("action"))
	first := &repb.ActionResult{ExitCode: 1}
	second := &repb.ActionResult{ExitCode: 2}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		// An action never stored is a plain miss.
		{"miss", func(t *testing.T) {
			if _, err := l.ActionCache("a").GetActionResult(ctx, action); status.Code(err) != codes.NotFound {
				t.Fatalf("Get = %v, want NOT_FOUND", err)
			}
		}},
		// Entries are keyed by instance: "a" does not see "ab"'s entry.
		{"keyed by instance", func(t *testing.T) {
			if err := l.ActionCache("ab").UpdateActionResult(ctx, action, first); err != nil {
				t.Fatal(err)
			}
			if _, err := l.ActionCache("a").GetActionResult(ctx, action); status.Code(err) != codes.NotFound {
				t.Fatalf("other instance Get = %v, want NOT_FOUND", err)
			}
			got, err := l.ActionCache("ab").GetActionResult(ctx, action)
			if err != nil || got.GetExitCode() != 1 {
				t.Fatalf("Get = %v, %v; want exit code 1", got, err)
			}
		}},
		// A poisoned entry is replaced by the next update.
		{"update overwrites", func(t *testing.T) {
			if err := l.ActionCache("ab").UpdateActionResult(ctx, action, second); err != nil {
				t.Fatal(err)
			}
			got, err := l.ActionCache("ab").GetActionResult(ctx, action)
			if err != nil || got.GetExitCode() != 2 {
				t.Fatalf("Get = %v, %v; want exit code 2", got, err)
			}
		}},
		// A nil result is the client's mistake.
		{"nil result", func(t *testing.T) {
			if err := l.ActionCache("").UpdateActionResult(ctx, action, nil); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Update(nil) = %v, want INVALID_ARGUMENT", err)
			}
		}},
		// Entries survive a restart.
		{"persisted", func(t *testing.T) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openStore(t, dir, disk.Options{})
			got, err := l.ActionCache("ab").GetActionResult(ctx, action)
			if err != nil || got.GetExitCode() != 2 {
				t.Fatalf("Get after reopen = %v, %v; want exit code 2", got, err)
			}
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}
