package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// putJSON is one element of the --json output of bst cas put.
type putJSON struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"` // "file" or "directory"
	Digest string `json:"digest"`
}

func newCASCmd(a *app) *cobra.Command {
	group := &cobra.Command{
		Use:   "cas",
		Short: "Put, get and list blobs and directory trees in castd's CAS",
		Args:  noArgsSuggest,
		RunE:  groupRun,
	}
	group.AddCommand(newCASPutCmd(a), newCASGetCmd(a), newCASLsCmd(a))
	return group
}

func newCASPutCmd(a *app) *cobra.Command {
	var t target
	var fn functionFlag
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "put PATH...",
		Short: "Store files (as blobs) and directories (as Directory trees); print their digests",
		Long: `Stores each PATH in castd's CAS and prints "HASH/SIZE  PATH". A file is
stored as one blob; a directory as a REAPI Directory tree (executable bits,
symlinks and empty directories kept) and its digest is the root Directory's.
"-" stores standard input as one blob. Only what castd lacks is uploaded.
Digests are computed with --digest-function (default sha256); a BLAKE3
digest is printed as blake3/HASH/SIZE.`,
		Example: "  bst cas put build/app.tar\n  bst cas put --json src/\n  tar c src | bst cas put -",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s expects at least one PATH", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.casPut(cmd.Context(), t, fn.fn, args, asJSON)
		},
	}
	addTargetFlags(cmd, &t)
	addFunctionFlag(cmd, &fn)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print [{"path","kind","digest"}]`)
	return cmd
}

func (a *app) casPut(ctx context.Context, t target, fn digest.Function, paths []string, asJSON bool) error {
	paths, cleanup, err := a.spoolStdin(paths)
	defer cleanup()
	if err != nil {
		return err
	}
	cas, _, err := a.casFor(ctx, t)
	if err != nil {
		return err
	}
	m := a.newMeter("uploaded", treeSize(paths))
	defer m.finish()
	out := []putJSON{}
	for _, p := range paths {
		r, err := putPath(ctx, withMeter(cas, m), fn, p)
		if err != nil {
			return err
		}
		r.Path = a.displayPath(p)
		out = append(out, r)
	}
	if asJSON {
		return writeJSON(a.stdout, out)
	}
	for _, r := range out {
		fmt.Fprintf(a.stdout, "%s  %s\n", r.Digest, r.Path)
	}
	return nil
}

// spoolStdin copies standard input to a temporary file when paths has
// "-" (the digest must be known before the upload starts) and returns
// paths with that file in its place, and a cleanup that removes it.
// casPut prints that file as "-".
func (a *app) spoolStdin(paths []string) ([]string, func(), error) {
	idx := slices.Index(paths, "-")
	if idx < 0 {
		return paths, func() {}, nil
	}
	if slices.Index(paths[idx+1:], "-") >= 0 {
		return nil, func() {}, usagef("standard input (-) can be put only once")
	}
	f, err := os.CreateTemp("", "bst-stdin-*")
	if err != nil {
		return nil, func() {}, err
	}
	cleanup := func() { _ = os.Remove(f.Name()) }
	_, err = io.Copy(f, a.stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, cleanup, fmt.Errorf("reading standard input: %w", err)
	}
	out := slices.Clone(paths)
	out[idx] = f.Name()
	a.stdinFile = f.Name()
	return out, cleanup, nil
}

// putPath uploads one file or directory, hashed with fn.
func putPath(ctx context.Context, cas store.CAS, fn digest.Function, p string) (putJSON, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return putJSON{}, err
	}
	if fi.IsDir() {
		d, err := localexec.UploadDirIn(ctx, cas, fn, p)
		return putJSON{Path: p, Kind: "directory", Digest: d.String()}, err
	}
	if !fi.Mode().IsRegular() {
		return putJSON{}, fmt.Errorf("%s: not a regular file or directory", p)
	}
	d, err := putFile(ctx, cas, fn, p)
	return putJSON{Path: p, Kind: "file", Digest: d.String()}, err
}

// displayPath is how a put path is printed: "-" for spooled standard input.
func (a *app) displayPath(p string) string {
	if p == a.stdinFile && p != "" {
		return "-"
	}
	return p
}

// putFile hashes the file at p with fn and uploads it unless castd has it.
func putFile(ctx context.Context, cas store.CAS, fn digest.Function, p string) (digest.Digest, error) {
	d, err := hashFile(fn, p)
	if err != nil {
		return d, err
	}
	missing, err := cas.FindMissing(ctx, []digest.Digest{d})
	if err != nil || len(missing) == 0 {
		return d, err
	}
	f, err := os.Open(p)
	if err != nil {
		return d, err
	}
	defer f.Close()
	return d, cas.Put(ctx, d, f)
}

// hashFile streams the file at p through fn.
func hashFile(fn digest.Function, p string) (digest.Digest, error) {
	f, err := os.Open(p)
	if err != nil {
		return digest.Digest{}, err
	}
	defer f.Close()
	h := fn.NewHasher()
	n, err := io.Copy(h, f)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("hash %s: %w", p, err)
	}
	return digest.Digest{Hash: digest.HashString(h), Size: n, Func: fn}, nil
}

// treeSize is the total size of the regular files under paths: the most a
// put can upload, shown as the progress total.
func treeSize(paths []string) int64 {
	var total int64
	for _, root := range paths {
		_ = filepath.WalkDir(root, func(_ string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if fi, err := e.Info(); err == nil {
					total += fi.Size()
				}
			}
			return nil
		})
	}
	return total
}
