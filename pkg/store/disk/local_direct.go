package disk

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directMin is the size from which a blob file is written with O_DIRECT.
// A blob this large is written once and seldom read back at once (a cold
// read hands the client the bytes as they arrive), so copying it through
// the page cache only costs CPU (the kernel's copy was the largest single
// cost of a cold large read, see BENCHMARKS.md) and pushes out pages that
// are of more use.
const directMin = 8 << 20

// directAlign is the alignment O_DIRECT asks of buffers, offsets and
// lengths on the file systems castd meets (logical blocks of 4 KiB at
// most).
const directAlign = 4096

// directWriter appends to a file with O_DIRECT while the file system
// takes it, and through the page cache from the first write it refuses
// (EINVAL: tmpfs, or a device with larger blocks) or that is not aligned.
// A last write that is not a whole number of blocks is padded with zeros
// (it needs the capacity) and finish cuts the padding off again.
type directWriter struct {
	f      *os.File
	direct bool
	off    int64 // bytes written, padding not counted
	padded bool  // the file ends in padding; no write may follow
}

// newDirectWriter turns O_DIRECT on for f when the file system allows it.
func newDirectWriter(f *os.File) *directWriter {
	return &directWriter{f: f, direct: setODirect(f, true) == nil}
}

var errAfterTail = errors.New("write after the padded last block")

func (w *directWriter) write(b []byte) error {
	if w.padded {
		return errAfterTail
	}
	if w.direct {
		done, err := w.writeDirect(b)
		if done || err != nil {
			return err
		}
		// Fall back for good; a refused write may have left part of b
		// (with padding) behind, so cut the file back to what counts.
		w.direct = false
		if err := setODirect(w.f, false); err != nil {
			return err
		}
		if err := w.f.Truncate(w.off); err != nil {
			return err
		}
	}
	_, err := w.f.WriteAt(b, w.off)
	if err == nil {
		w.off += int64(len(b))
	}
	return err
}

// writeDirect writes b with O_DIRECT. It reports false, and no error,
// when b cannot go that way.
func (w *directWriter) writeDirect(b []byte) (bool, error) {
	n := len(b)
	if n == 0 {
		return true, nil
	}
	whole := (n + directAlign - 1) &^ (directAlign - 1)
	if cap(b) < whole || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign != 0 {
		return false, nil
	}
	if whole > n {
		b = b[:whole]
		clear(b[n:])
	}
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return false, nil
		}
		return false, err
	}
	w.off += int64(n)
	w.padded = whole > n
	return true, nil
}

// finish cuts off the padding of the last block, if there is any.
func (w *directWriter) finish() error {
	if !w.padded {
		return nil
	}
	return w.f.Truncate(w.off)
}

// directRefused logs, once per store, that its file system refused
// O_DIRECT, so that blobs fetched from remotes go through the page cache.
func (l *Store) directRefused() {
	if l.directOff.CompareAndSwap(false, true) {
		l.log.Info("store: the file system refused O_DIRECT; large blobs fetched from remotes are written through the page cache", "dir", l.tmpDir)
	}
}

// setODirect sets or clears O_DIRECT on f.
func setODirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			ferr = err
			return
		}
		if on {
			fl |= unix.O_DIRECT
		} else {
			fl &^= unix.O_DIRECT
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl)
	})
	if err != nil {
		return err
	}
	return ferr
}
