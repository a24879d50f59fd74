package localexec

import (
	"io"
	"os"
	"time"
)

// teeGrace bounds how long output still in flight is copied once the
// command's process group has been killed. Only a process that left the
// group (setsid) can keep a pipe open that long; its later writes are lost
// to the capture file too.
const teeGrace = 2 * time.Second

// tee puts a pipe between a command and its capture file so that an
// observer sees each write as it happens. The capture file receives exactly
// the bytes the command wrote, so the stored blob is the same as without an
// observer.
type tee struct {
	r, w *os.File
	done chan struct{}
	err  error // first capture write error; read after done
}

// teeSet is the tees of one command.
type teeSet []*tee

// attach returns the file a command should write to: capture itself when
// obs is nil, else the write end of a pipe copied to capture and obs.
func (s *teeSet) attach(capture *os.File, obs io.Writer) (*os.File, error) {
	if obs == nil {
		return capture, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, internalf(err, "create output pipe")
	}
	t := &tee{r: r, w: w, done: make(chan struct{})}
	*s = append(*s, t)
	go t.copy(capture, obs)
	return w, nil
}

// copy moves the pipe's data to capture and obs until the pipe ends. A
// failing observer is dropped; a failing capture file is an error.
func (t *tee) copy(capture *os.File, obs io.Writer) {
	defer close(t.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := t.r.Read(buf)
		if n > 0 {
			if _, werr := capture.Write(buf[:n]); werr != nil && t.err == nil {
				t.err = internalf(werr, "write %s", capture.Name())
			}
			if obs != nil {
				if _, oerr := obs.Write(buf[:n]); oerr != nil {
					obs = nil
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// started closes the parent's write ends once the command holds them, so
// the pipes end when the command's processes are gone.
func (s teeSet) started() {
	for _, t := range s {
		_ = t.w.Close()
	}
}

// finish waits (at most teeGrace) for every pipe to drain after the
// process group was killed, closes them, and returns the first capture
// error. It is safe to call when started was not.
func (s teeSet) finish() error {
	if len(s) == 0 {
		return nil
	}
	grace := time.NewTimer(teeGrace)
	defer grace.Stop()
	expired := false
	var first error
	for _, t := range s {
		_ = t.w.Close()
		if !expired {
			select {
			case <-t.done:
			case <-grace.C:
				expired = true
			}
		}
		_ = t.r.Close()
		<-t.done
		if first == nil {
			first = t.err
		}
	}
	return first
}
