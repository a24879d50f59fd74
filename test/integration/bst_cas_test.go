package integration_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates a tree with an executable, a symlink, an empty
// directory, a nested file and a file of largeSize random bytes.
func writeTree(t *testing.T, dir string, largeSize int) {
	t.Helper()
	files := map[string]struct {
		data string
		mode os.FileMode
	}{
		"run.sh":         {"#!/bin/sh\necho hi\n", 0o755},
		"sub/data.txt":   {"nested\n", 0o644},
		"sub/deeper/z":   {"", 0o644},
		"large/blob.bin": {string(randomBlob(largeSize).data), 0o644},
	}
	for p, f := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/data.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// treeShape describes every path under dir: type, exec bit, contents or
// symlink target.
func treeShape(t *testing.T, dir string) map[string]string {
	t.Helper()
	shape := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			return err
		case fi.IsDir():
			shape[rel] = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			shape[rel] = "link:" + target
			return err
		default:
			data, err := os.ReadFile(p)
			shape[rel] = "file:" + fi.Mode().Perm().String()[3:4] + ":" + blobOf(data).d.GetHash()
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return shape
}

func TestBstCAS(t *testing.T) {
	t.Log("files and trees put into castd with bst come back identical: bits, links, empty dirs, large files")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	work := t.TempDir()
	src := filepath.Join(work, "src")
	writeTree(t, src, 9<<20)
	large := filepath.Join(src, "large", "blob.bin")

	var treeDigest string
	t.Run("put tree", func(t *testing.T) {
		t.Log("a directory is stored as a Directory tree and its digest printed with the path")
		r := mustBst(t, p.socket, work, "cas", "put", "src")
		treeDigest, _, _ = strings.Cut(r.stdout, "  ")
		if !strings.HasSuffix(r.stdout, "  src\n") || !strings.Contains(r.stderr, "uploaded 9.0 MiB") {
			t.Errorf("stdout %q, stderr %q: want 'DIGEST  src' and a plain progress line", r.stdout, r.stderr)
		}
	})
	t.Run("get tree", func(t *testing.T) {
		t.Log("a Directory digest is detected and materialised with every file type intact")
		out := filepath.Join(work, "out")
		mustBst(t, p.socket, work, "cas", "get", treeDigest, "-o", out)
		want, got := treeShape(t, src), treeShape(t, out)
		if len(got) != len(want) {
			t.Errorf("got %d paths, want %d: %v", len(got), len(want), got)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: got %q, want %q", k, got[k], v)
			}
		}
	})
	t.Run("ls", func(t *testing.T) {
		t.Log("the listing shows modes, sizes and link targets")
		r := mustBst(t, p.socket, work, "cas", "ls", treeDigest)
		for _, want := range []string{"-rwxr-xr-x", "run.sh", "link -> sub/data.txt", "empty/", "9437184  large/blob.bin"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("listing lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("ls json", func(t *testing.T) {
		t.Log("--json lists every path with its type")
		var entries []struct{ Path, Type, Target string }
		decodeJSON(t, mustBst(t, p.socket, work, "cas", "ls", "--json", treeDigest).stdout, &entries)
		types := map[string]string{}
		for _, e := range entries {
			types[e.Path] = e.Type + e.Target
		}
		if types["empty"] != "directory" || types["link"] != "symlinksub/data.txt" || types["run.sh"] != "file" {
			t.Errorf("entries %v", types)
		}
	})
	t.Run("large file round trip", func(t *testing.T) {
		t.Log("a blob over 8 MiB goes through ByteStream both ways and comes back byte for byte")
		var put []struct{ Path, Kind, Digest string }
		decodeJSON(t, mustBst(t, p.socket, work, "cas", "put", "--json", large).stdout, &put)
		if len(put) != 1 || put[0].Kind != "file" {
			t.Fatalf("put --json = %v", put)
		}
		r := mustBst(t, p.socket, work, "cas", "get", put[0].Digest, "-o", "large.copy")
		got, _ := os.ReadFile(filepath.Join(work, "large.copy"))
		want, _ := os.ReadFile(large)
		if !bytes.Equal(got, want) || !strings.Contains(r.stderr, "downloaded 9.0 MiB") {
			t.Errorf("copy differs (%d vs %d bytes) or no progress line: %q", len(got), len(want), r.stderr)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		t.Log("--quiet prints no progress")
		d := strings.Fields(mustBst(t, p.socket, work, "cas", "put", large).stdout)[0]
		if r := mustBst(t, p.socket, work, "--quiet", "cas", "get", d, "-o", "q.copy"); r.stderr != "" {
			t.Errorf("stderr %q with --quiet", r.stderr)
		}
	})
	t.Run("get missing", func(t *testing.T) {
		t.Log("an absent blob is exit 1 with not found")
		r := bst(t, p.socket, work, "cas", "get", randomBlob(5).d.GetHash()+"/5")
		if r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}
