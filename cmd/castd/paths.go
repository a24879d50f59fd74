package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// sharedTempSocketDir is the per-user socket directory used when there is
// no XDG_RUNTIME_DIR: /tmp/castd-UID.
func sharedTempSocketDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("castd-%d", os.Getuid()))
}

// privateDir makes sure dir exists, is a directory owned by us and is not
// accessible to group or others. In a shared temp dir another user could
// have created it first to intercept the socket.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("socket directory %s: not a directory", dir)
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("socket directory %s: owned by uid %d, not by us (uid %d); remove it or set XDG_RUNTIME_DIR", dir, st.Uid, os.Getuid())
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("socket directory %s: mode %04o is open to other users; expected 0700", dir, fi.Mode().Perm())
	}
	return nil
}
