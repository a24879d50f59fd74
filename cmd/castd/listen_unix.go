package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// listenUnix listens on a Unix socket at path with permissions mode.
//
// The parent directory is created 0700 when missing. A socket left behind by
// a castd that died (connecting is refused) is removed; a socket that still
// accepts connections belongs to a live server and is never taken over.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// Listen under a restrictive umask so the socket is never reachable with
	// looser permissions than asked for, then set the exact mode. The umask is
	// process-wide, but this runs once during start-up and only ever
	// tightens what a concurrently created file gets.
	old := syscall.Umask(0o077)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen unix:%s: %w", path, err)
	}
	if err := os.Chmod(path, mode.Perm()); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("socket mode %04o on %s: %w", mode.Perm(), path, err)
	}
	return l, nil
}

// removeStaleSocket removes path when it is a socket nobody listens on. It
// fails when a server answers there, or when path is something other than a
// socket (castd does not delete files it did not create).
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: the path exists and is not a socket; remove it or choose another path", path)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("another castd is serving on %s; stop it or choose another socket path", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("socket %s exists and its owner cannot be determined (%v); remove it if no castd runs", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}
