package disk

import (
	"errors"

	"google.golang.org/grpc/status"
)

// fullError is a write the local store refused because its filesystem is
// full (or was, when it opened read-only): the code and message the client
// may see, plus a mark IsFull finds however the status is wrapped.
type fullError struct {
	s     *status.Status
	cause error // the filesystem's ENOSPC or EDQUOT, when it refused the write
}

func (e *fullError) Error() string { return e.s.Err().Error() }

// GRPCStatus makes status.Code and status.Convert see the code.
func (e *fullError) GRPCStatus() *status.Status { return e.s }

// Unwrap lets isNoSpace see the filesystem's error.
func (e *fullError) Unwrap() error { return e.cause }

// markFull marks the status error err (from status.Errorf) as a refusal for
// lack of space.
func markFull(err error) error { return &fullError{s: status.Convert(err)} }

// IsFull reports whether err is the local store refusing a write because
// its filesystem is full (RESOURCE_EXHAUSTED) or because it opened
// read-only on a full filesystem (FAILED_PRECONDITION). Such a refusal
// says nothing about the blob: a caller that has the bytes from elsewhere
// (the fan-out reading a remote) may verify and serve them without
// storing them. It looks for the mark with errors.As, not at the message.
func IsFull(err error) bool {
	var f *fullError
	return errors.As(err, &f)
}

// The reasons Stats.WritesRefused gives.
const (
	// WritesRefusedFull: the filesystem is full; writes are accepted again
	// once space is freed.
	WritesRefusedFull = "filesystem full"
	// WritesRefusedReadOnly: the store opened read-only on a full
	// filesystem; writes are accepted after a restart with space.
	WritesRefusedReadOnly = "read-only after a start on a full disk"
)

// writesRefusedReason is Stats.WritesRefused, checked afresh (a statfs;
// Stats is not on a write's path) so that a disk filled by another process
// shows before a write is refused, even within the 100 ms that spaceFor
// reuses a reading for.
func (l *Store) writesRefusedReason() string {
	l.disk.available(true)
	_ = l.spaceFor(0)
	switch l.writesRefused() {
	case 1:
		return WritesRefusedFull
	case 2:
		return WritesRefusedReadOnly
	}
	return ""
}
