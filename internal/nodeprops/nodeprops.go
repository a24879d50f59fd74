// Package nodeprops reads and writes the REAPI 2.1 node properties castd
// supports, "mtime" and "unix_mode", for both of its executors of file
// trees: the buildbox-casd LocalCAS capture and staging (pkg/casd) and
// local execution (pkg/localexec, Command.output_node_properties and the
// properties of input FileNodes).
//
// String-based NodeProperty entries (NodeProperties.properties) are
// neither captured nor applied.
package nodeprops

import (
	"io/fs"
	"os"
	"syscall"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The names of the NodeProperties fields castd captures, as clients list
// them in Command.output_node_properties and the LocalCAS node_properties.
const (
	Mtime    = "mtime"
	UnixMode = "unix_mode"
)

// Supported returns the names castd captures and applies, sorted, for
// ExecutionCapabilities.supported_node_properties.
func Supported() []string { return []string{Mtime, UnixMode} }

// Set is which node properties to capture on files and directories. The
// zero Set captures none, so nodes keep no node_properties at all.
type Set struct {
	Mtime    bool   // "mtime": the modification time
	UnixMode bool   // "unix_mode": the permission bits, mode & 0o7777
	ModeMask uint32 // bits cleared from captured modes (LocalCAS unix_mode_mask)
}

// Parse returns the Set of the property names listed. Names castd does not
// capture are ignored.
func Parse(names []string) Set {
	var s Set
	for _, n := range names {
		switch n {
		case Mtime:
			s.Mtime = true
		case UnixMode:
			s.UnixMode = true
		}
	}
	return s
}

// Empty reports whether s captures nothing.
func (s Set) Empty() bool { return !s.Mtime && !s.UnixMode }

// Of returns the node properties in s of a file or directory with info fi
// (from stat or lstat), or nil when s is empty.
func (s Set) Of(fi fs.FileInfo) *repb.NodeProperties {
	if s.Empty() {
		return nil
	}
	np := &repb.NodeProperties{}
	if s.Mtime {
		np.Mtime = timestamppb.New(fi.ModTime())
	}
	if s.UnixMode {
		np.UnixMode = wrapperspb.UInt32(Mode(fi) &^ s.ModeMask)
	}
	return np
}

// Mode is fi's permission bits with setuid, setgid and sticky, as stat(2)
// gives them.
func Mode(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Mode & 0o7777
	}
	return uint32(fi.Mode().Perm())
}

// Apply gives the file at path the unix_mode (its low 12 bits) and then
// the mtime of np, those that are set; a nil np changes nothing. The
// access time is set to the mtime too.
func Apply(path string, np *repb.NodeProperties) error {
	if m := np.GetUnixMode(); m != nil {
		if err := syscall.Chmod(path, m.GetValue()&0o7777); err != nil {
			return &fs.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	return SetMtime(path, np.GetMtime())
}

// SetMtime sets the modification (and access) time of the file at path to
// t; a nil t changes nothing.
func SetMtime(path string, t *timestamppb.Timestamp) error {
	if t == nil {
		return nil
	}
	tt := t.AsTime()
	return os.Chtimes(path, tt, tt)
}
