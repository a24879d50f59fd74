package fanout

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// label prefixes err's message with the tier that failed and keeps its gRPC
// code. A bare context error becomes CANCELED or DEADLINE_EXCEEDED. The
// label the remote's client put on its errors (grpcerr.Labeled, e.g.
// "upstream NAME") is replaced, not repeated: the tier's label names the
// same remote.
//
// A tier that does not take the digest's function
// (store.IsUnsupportedFunction: a remote whose Capabilities do not list
// it) was skipped, not asked: its answer is NOT_FOUND whatever code it
// came with, so that it reads as a miss, not as a failure of the tier.
func label(tier string, err error) error {
	if err == nil {
		return nil
	}
	s := grpcerr.Unlabeled(err)
	code := s.Code()
	if store.IsUnsupportedFunction(err) {
		code = codes.NotFound
	}
	return status.Error(code, tier+": "+s.Message())
}

// remoteLabel names the i-th remote (0-based) in pull order, 1-based in
// text: "upstream[1] cache.example.com".
func remoteLabel(i int, name string) string {
	return fmt.Sprintf("upstream[%d] %s", i+1, name)
}

// labelLocal labels an error of the local store.
func labelLocal(err error) error { return label("local", err) }

// reason renders a labelled remote error for a foundNowhere message:
// "upstream[1] r1: connection refused (Unavailable)".
func reason(err error) string {
	s := grpcerr.Of(err)
	return fmt.Sprintf("%s (%s)", s.Message(), s.Code())
}

// foundNowhere is the error returned when no tier served what; failures
// are the remotes' labelled errors, in pull order. It is NOT_FOUND when at
// least one remote answered that it does not have it (a remote that could
// not answer is skipped, DESIGN §3.3), with every remote's reason so that
// an outage is visible in the message. When no remote could answer at
// all, it keeps the failure's own code (DESIGN §5: other errors keep their
// code): the last that is not a permanent refusal (grpcclient.Permanent;
// the last tier is the one that had the configured retries), so that a
// client retries while a remote is down, else the first.
func foundNowhere(what string, failures []error) error {
	if len(failures) == 0 {
		return status.Errorf(codes.NotFound, "%s not found locally and no remote is configured", what)
	}
	reasons := make([]string, len(failures))
	code, missed := codes.OK, false
	for i, err := range failures {
		reasons[i] = reason(err)
		switch c := grpcerr.Of(err).Code(); {
		case c == codes.NotFound:
			missed = true
		case code == codes.OK, !grpcclient.Permanent(c):
			code = c
		}
	}
	if missed {
		return status.Errorf(codes.NotFound, "%s found nowhere reachable: %s", what, strings.Join(reasons, "; "))
	}
	return status.Errorf(code, "%s: no remote could answer: %s", what, strings.Join(reasons, "; "))
}

// blobName is what foundNowhere calls a blob.
func blobName(d digest.Digest) string { return "blob " + d.String() }
