package localexec

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// internalf wraps an unexpected local failure (disk, process) as INTERNAL,
// keeping an existing status code when err already carries one.
func internalf(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if st, ok := status.FromError(err); ok && err != nil {
		return status.Errorf(st.Code(), "%s: %s", msg, st.Message())
	}
	return status.Errorf(codes.Internal, "%s: %v", msg, err)
}
