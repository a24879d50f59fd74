package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// maxDetectSize bounds the blobs cas get reads to tell a Directory from a
// file; larger blobs are files unless --tree says otherwise.
const maxDetectSize = 1 << 20

func newCASGetCmd(a *app) *cobra.Command {
	var t target
	var fn functionFlag
	var out string
	var tree, file bool
	cmd := &cobra.Command{
		Use:   "get DIGEST [-o PATH]",
		Short: "Fetch a blob to a file or stdout, or materialise a Directory tree",
		Long: `Fetches DIGEST: HASH/SIZE in --digest-function (default sha256), or
FUNCTION/HASH/SIZE as bst prints BLAKE3 digests. A file blob goes to -o PATH, or to stdout.
A Directory (detected automatically, or forced with --tree) is written as a
tree into -o DIR, which must not exist or be empty: files with their
executable bits, symlinks and empty directories.`,
		Example: "  bst cas get 4f3c...e1/1024 -o app.tar\n  bst cas get --tree 9a8b...07/142 -o out/",
		Args:    exactArgs(1, "one DIGEST (HASH/SIZE)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tree && file {
				return usagef("--tree and --file exclude each other")
			}
			d, err := fn.parseDigest(args[0])
			if err != nil {
				return err
			}
			return a.casGet(cmd.Context(), t, d, out, tree, file)
		},
	}
	addTargetFlags(cmd, &t)
	addFunctionFlag(cmd, &fn)
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write (default: stdout for a file)")
	cmd.Flags().BoolVar(&tree, "tree", false, "DIGEST is a Directory: materialise the tree")
	cmd.Flags().BoolVar(&file, "file", false, "DIGEST is a file blob, even if it parses as a Directory")
	return cmd
}

func (a *app) casGet(ctx context.Context, t target, d digest.Digest, out string, tree, file bool) error {
	cas, _, err := a.casFor(ctx, t)
	if err != nil {
		return err
	}
	if !tree && !file && d.Size <= maxDetectSize {
		b, err := readBlob(ctx, cas, d)
		if err != nil {
			return err
		}
		tree = asDirectory(b)
	}
	if !tree {
		return a.getFile(ctx, cas, d, out)
	}
	if out == "" || out == "-" {
		return usagef("%s is a Directory: give -o DIR to write the tree", d)
	}
	if err := checkEmptyDir(out); err != nil {
		return err
	}
	m := a.newMeter("downloaded", -1)
	defer m.finish()
	return localexec.MaterializeDir(ctx, withMeter(cas, m), d, out)
}

// getFile writes blob d to out (atomically) or to stdout.
func (a *app) getFile(ctx context.Context, cas store.CAS, d digest.Digest, out string) error {
	m := a.newMeter("downloaded", d.Size)
	defer m.finish()
	rc, err := withMeter(cas, m).Get(ctx, d, 0)
	if err != nil {
		return blobNotFound(err, d)
	}
	defer rc.Close()
	if out == "" || out == "-" {
		_, err = io.Copy(a.stdout, rc)
		return blobNotFound(err, d)
	}
	return blobNotFound(writeFileAtomic(out, rc, 0o644), d)
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, so path never holds a partial file. Like cp, it does not
// create missing directories.
func writeFileAtomic(path string, r io.Reader, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".bst-*")
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot create %s: no such directory %s", path, filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, unwrapPath(err))
	}
	defer os.Remove(f.Name())
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), mode)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

// checkEmptyDir accepts a path that does not exist or is an empty directory.
func checkEmptyDir(p string) error {
	entries, err := os.ReadDir(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: give a new or empty directory", p)
	}
	return nil
}

// unwrapPath drops the temporary file's name from a *PathError.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
