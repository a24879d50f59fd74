package casdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockSlack widens session protection backwards, for processes whose
// clocks disagree slightly or a wall clock that steps back a little.
const clockSlack = time.Second

// session is this store's entry in the sessions directory, locked while it
// runs.
type session struct {
	f     *os.File
	path  string
	start time.Time // blobs used since are protected
}

// end removes the entry and releases its lock.
func (s *session) end() {
	_ = os.Remove(s.path)
	_ = s.f.Close()
}

// registerSession creates dir/<start ns>.<pid>.<n> and holds an exclusive
// flock on it until the returned file is closed (or the process dies,
// which releases the lock). The file is locked under a temporary name
// first, so no other process ever sees it unlocked and takes it for dead.
func registerSession(dir string, start time.Time) (*session, error) {
	f, err := os.CreateTemp(dir, "new-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	prefix := fmt.Sprintf("%d.%d.", start.UnixNano(), os.Getpid())
	for n := 0; ; n++ {
		path := filepath.Join(dir, prefix+strconv.Itoa(n))
		err := os.Link(f.Name(), path)
		if errors.Is(err, os.ErrExist) {
			continue // another store of this process started in the same nanosecond
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return &session{f: f, path: path, start: start}, nil
	}
}

// protectedSince returns the time from which blob uses are protected: the
// start of the oldest live session less clockSlack, or ok false when no
// session is live. Files of dead sessions (their lock is free) are
// removed. Cost: one open and flock attempt per session file.
func protectedSince(dir string) (since time.Time, ok bool, err error) {
	names, err := readDirNames(dir)
	if err != nil {
		return time.Time{}, false, err
	}
	for _, name := range names {
		start, live := sessionLive(filepath.Join(dir, name))
		if live && (!ok || start.Before(since)) {
			since, ok = start, true
		}
	}
	return since.Add(-clockSlack), ok, nil
}

// sessionLive reports whether the session file at path is held by a
// running store, and its start. A dead session's file is removed; a file
// whose name is not a session's is ignored.
func sessionLive(path string) (time.Time, bool) {
	ns, err := strconv.ParseInt(strings.SplitN(filepath.Base(path), ".", 2)[0], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false // ended meanwhile
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		// Nobody holds it: its process is gone without Close.
		os.Remove(path)
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// readDirNames lists dir's entries without stat-ing them.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
