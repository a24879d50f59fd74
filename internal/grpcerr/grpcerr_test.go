package grpcerr_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
)

func TestInvalidArgumentNamesTheField(t *testing.T) {
	// Why: a client must see which field of its request is wrong.
	err := grpcerr.InvalidArgument("command.output_paths[1]", "%q is absolute", "/x")
	if s := status.Convert(err); s.Code() != codes.InvalidArgument || s.Message() != `command.output_paths[1]: "/x" is absolute` {
		t.Fatalf("InvalidArgument = %v", err)
	}
}

func TestCallerGone(t *testing.T) {
	// Why: a live caller is not gone; a cancelled or timed-out one is,
	// with the matching code, so that it is never reported as a miss.
	if err := grpcerr.CallerGone(context.Background()); err != nil {
		t.Fatalf("live context: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := grpcerr.CallerGone(ctx); status.Code(err) != codes.Canceled || !grpcerr.Canceled(err) {
		t.Fatalf("cancelled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 0)
	defer cancel()
	if err := grpcerr.CallerGone(ctx); status.Code(err) != codes.DeadlineExceeded || !grpcerr.Canceled(err) {
		t.Fatalf("expired context: %v", err)
	}
	if grpcerr.Canceled(status.Error(codes.Unavailable, "down")) {
		t.Fatal("UNAVAILABLE counted as cancelled")
	}
}

func TestLabel(t *testing.T) {
	type labelled struct {
		name, why string
		err       error
		want      *status.Status
	}
	for _, tc := range []labelled{
		{"status", "the code is kept and the message labelled",
			grpcerr.Label("upstream r1", status.Error(codes.NotFound, "gone")), status.New(codes.NotFound, "upstream r1: gone")},
		{"context error", "a bare context error becomes its gRPC code",
			grpcerr.Label("upstream r1", context.Canceled), status.New(codes.Canceled, "upstream r1: context canceled")},
		{"already labelled", "labelling twice within one component does not repeat the label",
			grpcerr.Label("upstream r1", grpcerr.Labelf("upstream r1", codes.Unavailable, "circuit open")), status.New(codes.Unavailable, "upstream r1: circuit open")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			if s := status.Convert(tc.err); s.Code() != tc.want.Code() || s.Message() != tc.want.Message() {
				t.Fatalf("status = %v %q; want %v %q", s.Code(), s.Message(), tc.want.Code(), tc.want.Message())
			}
		})
	}
	wrapped := fmt.Errorf("ctx: %w", grpcerr.Labelf("upstream r1", codes.Internal, "bad"))
	if grpcerr.Label("other", wrapped) != wrapped {
		t.Error("a labelled error wrapped with %w was labelled again")
	}
	if s := grpcerr.Unlabeled(wrapped); s.Code() != codes.Internal || s.Message() != "bad" {
		t.Errorf("Unlabeled(wrapped) = %v %q; want the cause", s.Code(), s.Message())
	}
	if grpcerr.Label("x", nil) != nil {
		t.Fatal("Label(nil) is not nil")
	}
}

func TestUnlabeled(t *testing.T) {
	// Why: an outer layer relabels by structure, not by trimming text; an
	// unlabelled error is left as it is.
	labelled := grpcerr.Label("upstream r1", status.Error(codes.Unavailable, "down"))
	if s := grpcerr.Unlabeled(labelled); s.Code() != codes.Unavailable || s.Message() != "down" {
		t.Fatalf("Unlabeled(labelled) = %v %q", s.Code(), s.Message())
	}
	plain := status.Error(codes.Unavailable, "upstream r1: down")
	if s := grpcerr.Unlabeled(plain); s.Message() != "upstream r1: down" {
		t.Fatalf("Unlabeled(plain) = %q; want the message untouched", s.Message())
	}
	if s := grpcerr.Of(context.DeadlineExceeded); s.Code() != codes.DeadlineExceeded {
		t.Fatalf("Of(DeadlineExceeded) = %v", s.Code())
	}
}
