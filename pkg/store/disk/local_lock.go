package disk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrLocked is wrapped by the error Open returns when another process holds
// the store directory, so callers can tell it apart with errors.Is.
var ErrLocked = errors.New("store directory is locked by another castd")

// lockDir takes an exclusive, non-blocking flock on dir/LOCK and writes our
// PID into it. The lock dies with the process (even on kill -9), so a stale
// LOCK file never blocks a restart.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store directory %s: cannot create lock file: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid := holderPID(f)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is in use by pid %s (lock file %s)", ErrLocked, dir, pid, path)
		}
		return nil, fmt.Errorf("store directory %s: lock %s: %w", dir, path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("store directory %s: write lock file %s: %w", dir, path, err)
	}
	return f, nil
}

// holderPID reads the PID the lock holder wrote, or "unknown".
func holderPID(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid := string(bytes.TrimSpace(buf[:n])); pid != "" {
		return pid
	}
	return "unknown"
}
