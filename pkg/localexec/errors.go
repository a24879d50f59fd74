package localexec

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// invalidArgument returns an INVALID_ARGUMENT status whose message starts
// with the offending field, e.g. "command.output_paths[1]: ...".
func invalidArgument(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// internalf wraps an unexpected local failure (disk, process) as INTERNAL,
// keeping an existing status code when err already carries one.
func internalf(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if st, ok := status.FromError(err); ok && err != nil {
		return status.Errorf(st.Code(), "%s: %s", msg, st.Message())
	}
	return status.Errorf(codes.Internal, "%s: %v", msg, err)
}
