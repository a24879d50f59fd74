//lint:file-ignore SA1019 the REAPI 2.0 output fields are deprecated but Debian's Bazel 4.2.3 still uses them

package localexec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/internal/nodeprops"
)

// outputKind says which Command field an output came from, which decides
// where a symlink found there is reported.
type outputKind int

const (
	anyOutput  outputKind = iota // output_paths (REAPI 2.1+)
	fileOutput                   // output_files (REAPI 2.0)
	dirOutput                    // output_directories (REAPI 2.0)
)

// outputSpec is one validated output path of a Command.
type outputSpec struct {
	path  string // as the client wrote it, relative to the working directory
	kind  outputKind
	props nodeprops.Set // the Command's output_node_properties
}

// outputSpecs validates the Command's output paths. output_paths wins over
// the REAPI 2.0 fields when set, as the specification says.
func outputSpecs(cmd *repb.Command) ([]outputSpec, error) {
	return checkedOutputSpecs(cmd, checkRelPath)
}

// checkedOutputSpecs is outputSpecs with check validating each path
// (allowEmpty for the REAPI 2.0 output_directories).
func checkedOutputSpecs(cmd *repb.Command, check func(field, p string, allowEmpty bool) error) ([]outputSpec, error) {
	var specs []outputSpec
	// REAPI: "If a property is not recognized by the server, the server
	// will return an INVALID_ARGUMENT."
	for i, name := range cmd.GetOutputNodeProperties() {
		if !slices.Contains(nodeprops.Supported(), name) {
			return nil, grpcerr.InvalidArgument(fmt.Sprintf("command.output_node_properties[%d]", i),
				"%q is not a node property castd captures; it captures %s", name, strings.Join(nodeprops.Supported(), ", "))
		}
	}
	props := nodeprops.Parse(cmd.GetOutputNodeProperties())
	add := func(field string, paths []string, kind outputKind) error {
		for i, p := range paths {
			if err := check(fmt.Sprintf("command.%s[%d]", field, i), p, kind == dirOutput); err != nil {
				return err
			}
			specs = append(specs, outputSpec{p, kind, props})
		}
		return nil
	}
	if len(cmd.GetOutputPaths()) > 0 {
		return specs, add("output_paths", cmd.GetOutputPaths(), anyOutput)
	}
	if err := add("output_files", cmd.GetOutputFiles(), fileOutput); err != nil {
		return nil, err
	}
	return specs, add("output_directories", cmd.GetOutputDirectories(), dirOutput)
}

// checkRelPath rejects paths that are absolute or have a ".." component;
// the empty path (the directory itself) only when allowEmpty.
func checkRelPath(field, p string, allowEmpty bool) error {
	switch {
	case p == "" && !allowEmpty:
		return grpcerr.InvalidArgument(field, "path is empty")
	case path.IsAbs(p):
		return grpcerr.InvalidArgument(field, "%q is absolute; output and working directory paths must be relative", p)
	case strings.ContainsRune(p, 0):
		return grpcerr.InvalidArgument(field, "%q contains a NUL byte", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return grpcerr.InvalidArgument(field, "%q contains \"..\"; paths must stay inside the input root", p)
		}
	}
	return nil
}

// prepareOutputs creates the parent directory of every output under wd.
func prepareOutputs(wd string, specs []outputSpec) error {
	for _, s := range specs {
		if s.path == "" {
			continue
		}
		parent := filepath.Dir(filepath.Join(wd, s.path))
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return internalf(err, "create parent of output %q", s.path)
		}
	}
	return nil
}

// collectOutputs records every output that exists under wd in res and its
// blobs in b; outputs the command did not create are simply absent.
func collectOutputs(ctx context.Context, b *blobSet, wd string, specs []outputSpec, res *repb.ActionResult) error {
	for _, s := range specs {
		p := filepath.Join(wd, s.path)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return internalf(err, "output %q", s.path)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			err = collectSymlink(p, s, res)
		case fi.IsDir():
			err = collectDir(ctx, b, p, s, res)
		case fi.Mode().IsRegular():
			err = collectFile(b, p, s, fi, res)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func collectFile(b *blobSet, p string, s outputSpec, fi fs.FileInfo, res *repb.ActionResult) error {
	d, err := b.addFile(p)
	if err != nil {
		return err
	}
	res.OutputFiles = append(res.OutputFiles, &repb.OutputFile{
		Path: s.path, Digest: d.Proto(), IsExecutable: fi.Mode()&0o111 != 0,
		NodeProperties: s.props.Of(fi),
	})
	return nil
}

// collectDir stores the directory at p as a Tree blob.
func collectDir(ctx context.Context, b *blobSet, p string, s outputSpec, res *repb.ActionResult) error {
	t, err := b.scanTreeProps(ctx, p, s.props)
	if err != nil {
		return err
	}
	d, err := b.addMessage(&repb.Tree{Root: t.root, Children: t.children})
	if err != nil {
		return err
	}
	res.OutputDirectories = append(res.OutputDirectories, &repb.OutputDirectory{Path: s.path, TreeDigest: d.Proto()})
	return nil
}

// collectSymlink reports a symlink output: in output_symlinks for REAPI 2.1
// output_paths, and in output_file_symlinks or output_directory_symlinks
// (by what it points to, or by the field it was listed in) for 2.0 clients.
func collectSymlink(p string, s outputSpec, res *repb.ActionResult) error {
	target, err := os.Readlink(p)
	if err != nil {
		return internalf(err, "output %q", s.path)
	}
	link := &repb.OutputSymlink{Path: s.path, Target: target}
	isDir := s.kind == dirOutput
	if s.kind == anyOutput {
		res.OutputSymlinks = append(res.OutputSymlinks, link)
		fi, err := os.Stat(p)
		isDir = err == nil && fi.IsDir()
	}
	if isDir {
		res.OutputDirectorySymlinks = append(res.OutputDirectorySymlinks, link)
	} else {
		res.OutputFileSymlinks = append(res.OutputFileSymlinks, link)
	}
	return nil
}
