package localexec

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// maxTreeEntries bounds the number of paths an input tree may expand to, so
// a small DAG of shared Directory messages cannot fill the disk.
const maxTreeEntries = 1 << 22

// MaterializeDir writes the directory tree rooted at the Directory root
// from cas into dst, which is created if needed and should be empty:
// regular files (with their executable bits), symlinks and empty
// directories. Every Directory message is fetched and every file blob
// checked with batched FindMissing calls before anything is written; missing
// blobs are one FAILED_PRECONDITION listing them all, and a symlink that
// points outside the tree is INVALID_ARGUMENT. On error dst may hold a
// partial tree, which the caller removes. It is what staging uses; safe for
// concurrent use on distinct dst.
func MaterializeDir(ctx context.Context, cas store.CAS, root digest.Digest, dst string) error {
	return materialize(ctx, cas, root, dst, false)
}

// materialize is MaterializeDir; anyLink accepts symlinks pointing anywhere,
// for a sysroot that will be the sandbox's / (where "/usr/bin" means the
// tree's own usr/bin). castd itself never follows the links it creates.
func materialize(ctx context.Context, cas store.CAS, root digest.Digest, dst string, anyLink bool) error {
	t, err := fetchTree(ctx, cas, root)
	if err != nil {
		return err
	}
	p, err := buildPlan(t, anyLink)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return internalf(err, "create %s", dst)
	}
	return p.write(ctx, cas, dst)
}

// plan is an input tree expanded into paths relative to its root, every
// name and symlink already validated.
type plan struct {
	dirs    []string // parents before children
	files   []planFile
	links   []planLink
	anyLink bool // accept symlinks whose targets leave the tree
}

type planFile struct {
	path  string
	d     digest.Digest
	exec  bool
	props *repb.NodeProperties // mtime and unix_mode to apply, if set
}

type planLink struct{ path, target string }

// buildPlan expands t into a plan, validating names and symlink targets.
func buildPlan(t *inputTree, anyLink bool) (*plan, error) {
	p := &plan{anyLink: anyLink}
	return p, p.add(t, t.root, "")
}

func (p *plan) add(t *inputTree, d digest.Digest, rel string) error {
	dir := t.dirs[d]
	field := func(kind string, i int) string { return fmt.Sprintf("input_root %q: %s[%d]", rel, kind, i) }
	for i, f := range dir.GetFiles() {
		if err := checkName(field("files", i), f.GetName()); err != nil {
			return err
		}
		fd, _ := digest.FromProto(f.GetDigest()) // validated by fetchTree
		p.files = append(p.files, planFile{path.Join(rel, f.GetName()), fd, f.GetIsExecutable(), f.GetNodeProperties()})
	}
	for i, s := range dir.GetSymlinks() {
		if err := checkName(field("symlinks", i), s.GetName()); err != nil {
			return err
		}
		if s.GetTarget() == "" || !p.anyLink && escapes(rel, s.GetTarget()) {
			return grpcerr.InvalidArgument(field("symlinks", i), "symlink %q -> %q escapes the input root", path.Join(rel, s.GetName()), s.GetTarget())
		}
		p.links = append(p.links, planLink{path.Join(rel, s.GetName()), s.GetTarget()})
	}
	for i, sub := range dir.GetDirectories() {
		if err := checkName(field("directories", i), sub.GetName()); err != nil {
			return err
		}
		if len(p.dirs)+len(p.files)+len(p.links) > maxTreeEntries {
			return grpcerr.InvalidArgument("input_root", "tree expands to more than %d entries", maxTreeEntries)
		}
		child := path.Join(rel, sub.GetName())
		p.dirs = append(p.dirs, child)
		sd, _ := digest.FromProto(sub.GetDigest())
		if err := p.add(t, sd, child); err != nil {
			return err
		}
	}
	return nil
}

// checkName rejects names that are not a single path component.
func checkName(field, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return grpcerr.InvalidArgument(field+".name", "%q is not a single path component", name)
	}
	return nil
}

// escapes reports whether a symlink in directory rel (relative to the root)
// with the given target resolves, lexically, outside the root.
func escapes(rel, target string) bool {
	if target == "" || path.IsAbs(target) {
		return true
	}
	c := path.Join(rel, target)
	return c == ".." || strings.HasPrefix(c, "../")
}

// write creates the plan under dst: directories first, then files in
// parallel, then symlinks (so no file is written through a symlink).
func (p *plan) write(ctx context.Context, cas store.CAS, dst string) error {
	for _, d := range p.dirs {
		if err := os.Mkdir(filepath.Join(dst, d), 0o755); err != nil {
			return internalf(err, "stage directory %q", d)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallelism)
	for _, f := range p.files {
		g.Go(func() error { return writeFile(gctx, cas, f, filepath.Join(dst, f.path)) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, l := range p.links {
		if err := os.Symlink(l.target, filepath.Join(dst, l.path)); err != nil {
			return internalf(err, "stage symlink %q", l.path)
		}
	}
	return nil
}

// writeFile copies blob f.d to dst, streamed, with f's executable bit, then
// applies f's node properties.
func writeFile(ctx context.Context, cas store.CAS, f planFile, dst string) error {
	mode := os.FileMode(0o644)
	if f.exec {
		mode = 0o755
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return internalf(err, "stage file %q", f.path)
	}
	if err := copyBlob(ctx, cas, f.d, out); err != nil {
		out.Close()
		return internalf(err, "stage file %q", f.path)
	}
	if err := out.Close(); err != nil {
		return internalf(err, "stage file %q", f.path)
	}
	return stageProperties(f, dst)
}

// copyBlob streams blob d into w and checks its length.
func copyBlob(ctx context.Context, cas store.CAS, d digest.Digest, w io.Writer) error {
	if d.Size == 0 {
		return nil
	}
	rc, err := cas.Get(ctx, d, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return err
	}
	if n != d.Size {
		return status.Errorf(codes.DataLoss, "blob %s: read %d bytes, want %d", d, n, d.Size)
	}
	return nil
}
