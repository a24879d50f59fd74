package main

import (
	"context"
	"fmt"
	"io"
	"path"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// entryJSON is one element of the --json output of bst cas ls.
type entryJSON struct {
	Path       string `json:"path"`
	Type       string `json:"type"` // "directory", "file" or "symlink"
	Size       int64  `json:"size,omitempty"`
	Executable bool   `json:"executable,omitempty"`
	Digest     string `json:"digest,omitempty"`
	Target     string `json:"target,omitempty"`
}

func newCASLsCmd(a *app) *cobra.Command {
	var t target
	var fn functionFlag
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls DIGEST",
		Short: "List the tree under a Directory digest with modes and sizes",
		Example: "  bst cas ls 9a8b...07/142\n" +
			"  bst cas ls --json $(bst cas put src/ | cut -d' ' -f1)",
		Args: exactArgs(1, "one Directory DIGEST (HASH/SIZE)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := fn.parseDigest(args[0])
			if err != nil {
				return err
			}
			return a.casLs(cmd.Context(), t, d, asJSON)
		},
	}
	addTargetFlags(cmd, &t)
	addFunctionFlag(cmd, &fn)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print [{"path","type","size","executable","digest","target"}]`)
	return cmd
}

func (a *app) casLs(ctx context.Context, t target, root digest.Digest, asJSON bool) error {
	cas, _, err := a.casFor(ctx, t)
	if err != nil {
		return err
	}
	entries, err := listTree(ctx, cas, root)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(a.stdout, entries)
	}
	writeListing(a.stdout, entries)
	return nil
}

// listTree walks the Directory tree at root depth-first, entries of each
// directory in their (sorted) order, and returns every path in it. Every
// digest in the tree is read in root's function.
func listTree(ctx context.Context, cas store.CAS, root digest.Digest) ([]entryJSON, error) {
	out := []entryJSON{}
	var walk func(d digest.Digest, prefix string, depth int) error
	walk = func(d digest.Digest, prefix string, depth int) error {
		if depth > 256 {
			return fmt.Errorf("directory %s: tree deeper than 256 levels", d)
		}
		var dir repb.Directory
		b, err := readBlob(ctx, cas, d)
		if err == nil && (proto.Unmarshal(b, &dir) != nil || len(dir.ProtoReflect().GetUnknown()) != 0) {
			if depth == 0 {
				return fmt.Errorf("%s is a file blob, not a Directory (fetch it with bst cas get %s)", d, d)
			}
			err = fmt.Errorf("blob %s is a file blob, not a Directory", d)
		}
		if err != nil {
			return fmt.Errorf("directory %s: %w", path.Join(".", prefix), err)
		}
		for _, f := range dir.GetFiles() {
			out = append(out, entryJSON{Path: path.Join(prefix, f.GetName()), Type: "file", Size: f.GetDigest().GetSizeBytes(),
				Executable: f.GetIsExecutable(), Digest: protoDigestIn(root.Func, f.GetDigest())})
		}
		for _, s := range dir.GetSymlinks() {
			out = append(out, entryJSON{Path: path.Join(prefix, s.GetName()), Type: "symlink", Target: s.GetTarget()})
		}
		for _, sub := range dir.GetDirectories() {
			p := path.Join(prefix, sub.GetName())
			out = append(out, entryJSON{Path: p, Type: "directory", Digest: protoDigestIn(root.Func, sub.GetDigest())})
			sd, err := digest.FromProtoIn(root.Func, sub.GetDigest())
			if err != nil {
				return fmt.Errorf("directory %s: %w", p, err)
			}
			if err := walk(sd, p, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(root, "", 0)
}

func protoDigestString(d *repb.Digest) string {
	return fmt.Sprintf("%s/%d", d.GetHash(), d.GetSizeBytes())
}

// writeListing prints one line per entry: mode, size, path (and target).
func writeListing(w io.Writer, entries []entryJSON) {
	for _, e := range entries {
		switch e.Type {
		case "directory":
			fmt.Fprintf(w, "drwxr-xr-x  %12s  %s/\n", "-", e.Path)
		case "symlink":
			fmt.Fprintf(w, "lrwxrwxrwx  %12s  %s -> %s\n", "-", e.Path, e.Target)
		default:
			mode := "-rw-r--r--"
			if e.Executable {
				mode = "-rwxr-xr-x"
			}
			fmt.Fprintf(w, "%s  %12d  %s  %s\n", mode, e.Size, e.Path, e.Digest)
		}
	}
}
