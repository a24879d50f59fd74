package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	ignore "github.com/sabhiram/go-gitignore"
)

// ignoreFile names the file of gitignore-style patterns bst run applies to
// its input directory.
const ignoreFile = ".bstignore"

// stageInput returns the directory to upload for dir: dir itself when it
// has no .bstignore and nothing is excluded, else a temporary copy (hard
// links where possible) without the ignored paths, removed by cleanup.
// exclude lists slash-separated paths relative to dir that are left out
// too: bst run passes the declared outputs, so outputs written back by an
// earlier run never become inputs (which would change the action and make
// the command trip over its own old outputs).
func stageInput(dir string, exclude []string) (staged string, cleanup func(), err error) {
	lines, err := readIgnoreLines(filepath.Join(dir, ignoreFile))
	if err != nil {
		return "", nil, err
	}
	for _, e := range exclude {
		if e = strings.Trim(path.Clean("/"+e), "/"); e != "" && e != "." {
			lines = append(lines, "/"+escapeGlob(e))
		}
	}
	if len(lines) == 0 {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "bst-input-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	if err := copyFiltered(dir, tmp, ignore.CompileIgnoreLines(lines...)); err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp, cleanup, nil
}

// readIgnoreLines returns the lines of a .bstignore file; none when the
// file does not exist.
func readIgnoreLines(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ignoreFile, err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// escapeGlob makes a path match itself literally as an ignore pattern.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]\!#`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
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
