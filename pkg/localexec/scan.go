package localexec

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"

	"github.com/castd/castd/internal/nodeprops"
	"github.com/castd/castd/pkg/digest"
)

// scannedTree is a local directory turned into REAPI messages, all of them
// recorded in the blobSet that scanned it.
type scannedTree struct {
	root       *repb.Directory
	rootDigest digest.Digest
	children   []*repb.Directory // every descendant, each distinct message once
}

// scanTree reads dir into Directory messages, hashing its files in parallel,
// and records every file and Directory in b for upload. Concurrent calls on
// one blobSet are not safe.
func (b *blobSet) scanTree(ctx context.Context, dir string) (*scannedTree, error) {
	return b.scanTreeProps(ctx, dir, nodeprops.Set{})
}

// scanTreeProps is scanTree with the node properties in props recorded on
// every Directory and FileNode.
func (b *blobSet) scanTreeProps(ctx context.Context, dir string, props nodeprops.Set) (*scannedTree, error) {
	var pending []pendingFile
	top, err := scan(dir, props, &pending)
	if err != nil {
		return nil, err
	}
	if err := b.hashFiles(ctx, pending); err != nil {
		return nil, err
	}
	t := &scannedTree{root: top.dir}
	seen := digest.NewSet()
	t.rootDigest, err = b.finish(top, seen, &t.children)
	return t, err
}

// hashFiles fills in the digest of every pending file, in parallel.
func (b *blobSet) hashFiles(ctx context.Context, pending []pendingFile) error {
	digests := make([]digest.Digest, len(pending))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallelism)
	for i, pf := range pending {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			d, err := hashFile(pf.path)
			digests[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, pf := range pending {
		pf.node.Digest = digests[i].Proto()
		b.files[digests[i]] = pf.path
	}
	return nil
}

// finish computes Directory digests bottom-up, records each message, and
// appends every distinct descendant of s to children (s itself excluded).
func (b *blobSet) finish(s *scannedDir, seen digest.Set, children *[]*repb.Directory) (digest.Digest, error) {
	for i, sub := range s.subs {
		d, err := b.finish(sub, seen, children)
		if err != nil {
			return digest.Digest{}, err
		}
		s.dir.Directories[i].Digest = d.Proto()
		if !seen.Has(d) {
			seen.Add(d)
			*children = append(*children, sub.dir)
		}
	}
	return b.addMessage(s.dir)
}

// scannedDir is a Directory read from disk whose file digests and
// subdirectory digests are filled in after hashing.
type scannedDir struct {
	dir  *repb.Directory
	subs []*scannedDir // parallel to dir.Directories
}

type pendingFile struct {
	node *repb.FileNode
	path string
}

// scan reads dir recursively, with the node properties in props; regular
// files are left in pending for hashing.
func scan(dir string, props nodeprops.Set, pending *[]pendingFile) (*scannedDir, error) {
	entries, err := os.ReadDir(dir) // sorted by name, as REAPI requires
	if err != nil {
		return nil, internalf(err, "read directory %s", dir)
	}
	np, err := dirProperties(dir, props)
	if err != nil {
		return nil, err
	}
	s := &scannedDir{dir: &repb.Directory{NodeProperties: np}}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch t := e.Type(); {
		case t.IsDir():
			sub, err := scan(p, props, pending)
			if err != nil {
				return nil, err
			}
			s.dir.Directories = append(s.dir.Directories, &repb.DirectoryNode{Name: e.Name()})
			s.subs = append(s.subs, sub)
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, internalf(err, "read symlink %s", p)
			}
			s.dir.Symlinks = append(s.dir.Symlinks, &repb.SymlinkNode{Name: e.Name(), Target: target})
		case t.IsRegular():
			info, err := e.Info()
			if err != nil {
				return nil, internalf(err, "stat %s", p)
			}
			node := &repb.FileNode{Name: e.Name(), IsExecutable: info.Mode()&0o111 != 0, NodeProperties: props.Of(info)}
			s.dir.Files = append(s.dir.Files, node)
			*pending = append(*pending, pendingFile{node, p})
		}
	}
	return s, nil
}
