package casd

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/nodeprops"
	"github.com/castd/castd/pkg/digest"
)

// placeFile puts one file of a staged tree at f.dst: a hard link to its
// blob file when it is not executable and has no mtime to set (the blob
// file is read-only and shared, so neither can change on it), else a
// verified copy with the mode and mtime asked for. A link that fails (the
// staging path on another filesystem) falls back to a copy.
func (d *Daemon) placeFile(ctx context.Context, f stageFile) error {
	dg, _ := digest.FromProto(f.node.GetDigest()) // checked by readTree
	mtime := f.node.GetNodeProperties().GetMtime()
	if !f.node.GetIsExecutable() && mtime == nil && !dg.IsEmpty() {
		if os.Link(d.blobPath(dg), f.dst) == nil {
			return nil
		}
	}
	mode := os.FileMode(0o444)
	if f.node.GetIsExecutable() {
		mode = 0o555
	}
	if err := d.copyBlob(ctx, dg, f.dst, mode); err != nil {
		return err
	}
	if err := nodeprops.SetMtime(f.dst, mtime); err != nil {
		return fsError("set mtime", err)
	}
	return nil
}

// blobPath is the file of blob dg in buildbox-casd's layout, which
// BuildStream reads too: objects/<hash[:2]>/<hash[2:]>.
func (d *Daemon) blobPath(dg digest.Digest) string {
	return filepath.Join(d.store.Dir(), dg.Hash[:2], dg.Hash[2:])
}

// copyBlob writes blob dg, read (and verified) through the store, to a new
// file dst with mode.
func (d *Daemon) copyBlob(ctx context.Context, dg digest.Digest, dst string, mode os.FileMode) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o200)
	if err != nil {
		return fsError("stage file", err)
	}
	err = d.copyInto(ctx, dg, out)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fsError("stage file", cerr)
	}
	if err == nil {
		err = os.Chmod(dst, mode)
	}
	return err
}

// copyInto streams blob dg into w. The store's reader yields exactly
// dg.Size bytes or fails, so a short copy is the store's error.
func (d *Daemon) copyInto(ctx context.Context, dg digest.Digest, w io.Writer) error {
	if dg.IsEmpty() {
		return nil
	}
	rc, err := d.store.Get(ctx, dg, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.CopyN(w, rc, dg.Size); err != nil {
		return status.Errorf(status.Code(err), "buildbox-casd (castd): staging blob %s: %v", dg, err)
	}
	return nil
}

// removeTree removes everything under dir, and dir itself when self.
// Directories a staged build made read-only are made writable first.
func removeTree(dir string, self bool) error {
	if err := removeContents(dir); err != nil {
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		if err := removeContents(dir); err != nil {
			return err
		}
	}
	if self {
		return os.Remove(dir)
	}
	return nil
}

// removeContents removes every entry of dir.
func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
