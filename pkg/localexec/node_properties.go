package localexec

import (
	"fmt"
	"os"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/internal/nodeprops"
)

// Node properties (REAPI 2.1). Outputs: Command.output_node_properties
// names the properties captured on every OutputFile and on every FileNode
// and Directory of output Trees; castd captures "mtime" and "unix_mode"
// (mode & 0o7777) and ignores other names. A Command that names none gets
// results without node_properties, as before 2.1. Inputs: the mtime and
// unix_mode of an input FileNode are applied to the staged file (unix_mode
// replaces the mode is_executable gives); properties of directories and
// symlinks are not applied. pkg/casd captures the same way: both use
// internal/nodeprops.

// dirProperties returns the node properties in props of directory dir, nil
// (without a stat) when props is empty.
func dirProperties(dir string, props nodeprops.Set) (*repb.NodeProperties, error) {
	if props.Empty() {
		return nil, nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, internalf(err, "stat %s", dir)
	}
	return props.Of(fi), nil
}

// stageProperties applies the node properties of the input file f, staged
// at dst. An mtime that is not a valid timestamp is INVALID_ARGUMENT.
func stageProperties(f planFile, dst string) error {
	if f.props == nil {
		return nil
	}
	if t := f.props.GetMtime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return grpcerr.InvalidArgument(fmt.Sprintf("input_root %q: node_properties.mtime", f.path), "%v", err)
		}
	}
	if err := nodeprops.Apply(dst, f.props); err != nil {
		return internalf(err, "stage file %q: node properties", f.path)
	}
	return nil
}
