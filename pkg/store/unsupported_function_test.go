package store_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestUnsupportedFunctionError(t *testing.T) {
	err := fmt.Errorf("push: %w", &store.UnsupportedFunctionError{Func: digest.BLAKE3, Store: "remote a"})
	if !store.IsUnsupportedFunction(err) {
		t.Fatal("a wrapped UnsupportedFunctionError is not recognised")
	}
	if store.IsUnsupportedFunction(status.Error(codes.FailedPrecondition, "other")) {
		t.Fatal("any FAILED_PRECONDITION is taken for an unsupported function")
	}
	if c := status.Code(&store.UnsupportedFunctionError{Func: digest.BLAKE3}); c != codes.FailedPrecondition {
		t.Fatalf("code %v, want FAILED_PRECONDITION", c)
	}
}
