package casdir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// usageFile is the byte count shared by every process on the directory: a
// decimal number in cas/castd/usage, read and written under an flock on the
// file. mu serialises this process's goroutines, which share the one open
// file (an flock does not exclude users of the same open file).
type usageFile struct {
	mu sync.Mutex
	f  *os.File
}

// openUsage opens the count at path, creating it from count() (a walk of
// the objects) when it is missing or unreadable, as for a directory that
// buildbox-casd wrote.
func openUsage(path string, count func() (int64, error)) (*usageFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	u := &usageFile{f: f}
	err = u.update(func(n int64, ok bool) (int64, error) {
		if ok {
			return n, nil
		}
		return count()
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	return u, nil
}

// get returns the current count.
func (u *usageFile) get() (int64, error) {
	var out int64
	err := u.update(func(n int64, ok bool) (int64, error) {
		out = n
		return n, nil
	})
	return out, err
}

// add adds delta (negative for removals) to the count.
func (u *usageFile) add(delta int64) error {
	return u.update(func(n int64, _ bool) (int64, error) { return max(n+delta, 0), nil })
}

// update replaces the count n with f(n, ok) under the lock; ok is false
// when the file held no valid count. It writes only when the value
// changed.
func (u *usageFile) update(f func(n int64, ok bool) (int64, error)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	fd := int(u.f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("flock %s: %w", u.f.Name(), err)
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	buf := make([]byte, 32)
	k, err := u.f.ReadAt(buf, 0)
	if k == 0 && err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", u.f.Name(), err)
	}
	n, perr := strconv.ParseInt(strings.TrimSpace(string(buf[:k])), 10, 64)
	ok := perr == nil && n >= 0
	next, err := f(n, ok)
	if err != nil || (ok && next == n) {
		return err
	}
	text := strconv.FormatInt(next, 10) + "\n"
	if err := u.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate %s: %w", u.f.Name(), err)
	}
	if _, err := u.f.WriteAt([]byte(text), 0); err != nil {
		return fmt.Errorf("write %s: %w", u.f.Name(), err)
	}
	return nil
}

func (u *usageFile) close() error { return u.f.Close() }
