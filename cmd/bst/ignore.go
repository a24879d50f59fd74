package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	ignore "github.com/sabhiram/go-gitignore"
)

// ignoreFile names the file of gitignore-style patterns bst run applies to
// its input directory.
const ignoreFile = ".bstignore"

// stageInput returns the directory to upload for dir: dir itself when it
// has no .bstignore, else a temporary copy (hard links where possible)
// without the ignored paths, removed by cleanup.
func stageInput(dir string) (staged string, cleanup func(), err error) {
	ig, err := ignore.CompileIgnoreFile(filepath.Join(dir, ignoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return dir, func() {}, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", ignoreFile, err)
	}
	tmp, err := os.MkdirTemp("", "bst-input-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	if err := copyFiltered(dir, tmp, ig); err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp, cleanup, nil
}

// copyFiltered recreates src's tree in dst, leaving out what ig matches:
// directories, symlinks, and regular files linked (or copied) with their
// modes. Other file types are skipped, as UploadDir skips them.
func copyFiltered(src, dst string, ig *ignore.GitIgnore) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		slash := filepath.ToSlash(rel)
		if ig.MatchesPath(slash) || e.IsDir() && ig.MatchesPath(slash+"/") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case e.IsDir():
			return os.Mkdir(target, 0o755)
		case e.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case e.Type().IsRegular():
			return linkOrCopy(p, target)
		}
		return nil
	})
}

// linkOrCopy hard-links src to dst, or copies it (keeping its mode) when
// they are on different file systems.
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
