package execution

import (
	"io"
	"path"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxLogStreamBytes is how much of one stdout or stderr a log stream
// keeps. Output beyond it is dropped from the stream (never from the
// stdout_digest / stderr_digest blobs); a reader reaching the cut gets
// OUT_OF_RANGE saying so.
const MaxLogStreamBytes = 16 << 20

// logStream is one append-only, in-memory, bounded log: the runner writes
// to it while an action runs, any number of readers follow it from an
// offset, and Close marks it complete. Safe for concurrent use.
type logStream struct {
	name  string
	limit int

	mu       sync.Mutex
	buf      []byte
	dropped  int64
	closed   bool
	closedAt time.Time
	changed  chan struct{} // closed and replaced on every append and on Close
}

func newLogStream(name string, limit int) *logStream {
	return &logStream{name: name, limit: limit, changed: make(chan struct{})}
}

// Write appends p, or what fits under the limit. It never blocks and never
// fails, so a command is not held up by its readers.
func (l *logStream) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(p) == 0 {
		return len(p), nil
	}
	keep := min(len(p), l.limit-len(l.buf))
	l.buf = append(l.buf, p[:keep]...)
	l.dropped += int64(len(p) - keep)
	l.notify()
	return len(p), nil
}

// close marks the stream complete at now and wakes its readers.
func (l *logStream) close(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed, l.closedAt = true, now
		l.notify()
	}
}

func (l *logStream) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// size is how many bytes the stream holds.
func (l *logStream) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buf)
}

// reader returns a reader from offset. An offset past the end of a
// complete stream is OUT_OF_RANGE; on a live stream it waits for the data.
func (l *logStream) reader(offset int64) (io.ReadCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset < 0 || ((l.closed || l.dropped > 0) && offset > int64(len(l.buf))) {
		return nil, status.Errorf(codes.OutOfRange, "read_offset %d is outside log stream %s (%d bytes)", offset, l.name, len(l.buf))
	}
	return &logReader{l: l, pos: offset, stop: make(chan struct{})}, nil
}

// logReader follows a logStream. Read blocks until data arrives, the
// stream completes (io.EOF) or Close is called. Close may be called from
// another goroutine to end a blocked Read.
type logReader struct {
	l    *logStream
	pos  int64
	stop chan struct{}
	once sync.Once
}

// Read implements io.Reader.
func (r *logReader) Read(p []byte) (int, error) {
	for {
		n, changed, err := r.next(p)
		if n > 0 || err != nil {
			return n, err
		}
		select {
		case <-changed:
		case <-r.stop:
			return 0, status.Error(codes.Canceled, "log stream reader closed")
		}
	}
}

// next copies what is available at the reader's position, or returns the
// channel to wait on.
func (r *logReader) next(p []byte) (int, <-chan struct{}, error) {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.pos < int64(len(l.buf)) {
		n := copy(p, l.buf[r.pos:])
		r.pos += int64(n)
		return n, nil, nil
	}
	if l.dropped > 0 {
		return 0, nil, status.Errorf(codes.OutOfRange, "log stream %s truncated after %d bytes; the whole output is in the ActionResult's %s_digest",
			l.name, len(l.buf), path.Base(l.name))
	}
	if l.closed && r.pos > int64(len(l.buf)) {
		return 0, nil, status.Errorf(codes.OutOfRange, "read_offset %d is outside log stream %s (%d bytes)", r.pos, l.name, len(l.buf))
	}
	if l.closed {
		return 0, nil, io.EOF
	}
	return 0, l.changed, nil
}

// Close ends the reader; a blocked Read returns CANCELLED.
func (r *logReader) Close() error {
	r.once.Do(func() { close(r.stop) })
	return nil
}
