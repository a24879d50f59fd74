package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// finishRun prints what the log streams did not relay of the action's
// stdout and stderr, writes its outputs under dir, says how the result was
// obtained and ends with the action's exit code (1 when the execution
// itself failed). It warns about each of the declared outputs the action
// did not produce.
func (a *app) finishRun(ctx context.Context, cas store.CAS, resp *repb.ExecuteResponse, done relayed, action digest.Digest, dir string, outputs []string) error {
	res := resp.GetResult()
	if res != nil {
		if err := a.printStreams(ctx, cas, res, done); err != nil {
			return err
		}
	}
	if s := status.FromProto(resp.GetStatus()); s.Err() != nil {
		return fmt.Errorf("action %s: %s", action, withEnvHint(message(s.Err())))
	}
	if res == nil {
		return fmt.Errorf("action %s: castd returned no result", action)
	}
	if err := writeOutputs(ctx, cas, res, dir); err != nil {
		return fmt.Errorf("action %s: outputs: %w", action, err)
	}
	for _, o := range missingOutputs(res, outputs) {
		a.note("warning: the action did not produce --output %s", o)
	}
	a.note("%s (action %s, exit code %d)", describe(resp), action, res.GetExitCode())
	return exitCode(int(res.GetExitCode()))
}

// missingOutputs returns the declared outputs (as given to --output) that
// res has no file, directory or symlink for.
func missingOutputs(res *repb.ActionResult, outputs []string) []string {
	got := map[string]bool{}
	for _, f := range res.GetOutputFiles() {
		got[f.GetPath()] = true
	}
	for _, d := range res.GetOutputDirectories() {
		got[d.GetPath()] = true
	}
	for _, s := range outputSymlinks(res) {
		got[s.GetPath()] = true
	}
	var missing []string
	for _, o := range outputs {
		if !got[path.Clean(strings.TrimSuffix(o, "/"))] {
			missing = append(missing, o)
		}
	}
	return missing
}

// envHint follows an action's "not found in the action's PATH" error:
// actions get only the environment bst run is given.
const envHint = "the action's environment is empty unless given with --env; try --env PATH=/usr/local/bin:/usr/bin:/bin"

// withEnvHint adds envHint to msg when the command was not found.
func withEnvHint(msg string) string {
	if strings.Contains(msg, "not found in the action's PATH") {
		return msg + "; " + envHint
	}
	return msg
}

// printStreams copies the action's stdout and stderr to bst's, past the
// bytes the log streams already relayed (all of them for a cache hit).
func (a *app) printStreams(ctx context.Context, cas store.CAS, res *repb.ActionResult, done relayed) error {
	if err := copyStream(ctx, cas, a.stdout, res.GetStdoutRaw(), res.GetStdoutDigest(), done.stdout); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	if err := copyStream(ctx, cas, a.stderr, res.GetStderrRaw(), res.GetStderrDigest(), done.stderr); err != nil {
		return fmt.Errorf("stderr: %w", err)
	}
	return nil
}

// copyStream writes raw, or else the blob d, from byte from on to w.
func copyStream(ctx context.Context, cas store.CAS, w io.Writer, raw []byte, d *repb.Digest, from int64) error {
	if len(raw) > 0 || d.GetSizeBytes() == 0 {
		_, err := w.Write(raw[min(from, int64(len(raw))):])
		return err
	}
	if from >= d.GetSizeBytes() {
		return nil
	}
	dg, err := digest.FromProto(d)
	if err != nil {
		return err
	}
	rc, err := cas.Get(ctx, dg, from)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// writeOutputs replaces each output path under dir with the action's
// output: files with their executable bits, directories from their Tree
// blobs, symlinks with their targets.
func writeOutputs(ctx context.Context, cas store.CAS, res *repb.ActionResult, dir string) error {
	for _, f := range res.GetOutputFiles() {
		if err := writeOutputFile(ctx, cas, f, dir); err != nil {
			return err
		}
	}
	for _, d := range res.GetOutputDirectories() {
		if err := writeOutputDir(ctx, cas, d, dir); err != nil {
			return err
		}
	}
	for _, s := range outputSymlinks(res) {
		p, err := outputPath(dir, s.GetPath())
		if err == nil {
			err = replaceWith(p, func() error { return os.Symlink(s.GetTarget(), p) })
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeOutputFile(ctx context.Context, cas store.CAS, f *repb.OutputFile, dir string) error {
	p, err := outputPath(dir, f.GetPath())
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if f.GetIsExecutable() {
		mode = 0o755
	}
	var r io.Reader = bytes.NewReader(f.GetContents())
	if len(f.GetContents()) == 0 && f.GetDigest().GetSizeBytes() > 0 {
		d, err := digest.FromProto(f.GetDigest())
		if err != nil {
			return fmt.Errorf("%s: %w", f.GetPath(), err)
		}
		rc, err := cas.Get(ctx, d, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", f.GetPath(), err)
		}
		defer rc.Close()
		r = rc
	}
	return replaceWith(p, func() error { return writeFileAtomic(p, r, mode) })
}

func writeOutputDir(ctx context.Context, cas store.CAS, d *repb.OutputDirectory, dir string) error {
	p, err := outputPath(dir, d.GetPath())
	if err != nil {
		return err
	}
	td, err := digest.FromProto(d.GetTreeDigest())
	if err != nil {
		return fmt.Errorf("%s: %w", d.GetPath(), err)
	}
	var tree repb.Tree
	if err := readMessage(ctx, cas, td, &tree); err != nil {
		return fmt.Errorf("%s: %w", d.GetPath(), err)
	}
	overlay, root, err := treeCAS(cas, &tree)
	if err != nil {
		return err
	}
	return replaceWith(p, func() error { return localexec.MaterializeDir(ctx, overlay, root, p) })
}

// outputPath joins an output path to dir, refusing paths that escape it.
func outputPath(dir, rel string) (string, error) {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if r, err := filepath.Rel(dir, p); err != nil || filepath.IsAbs(rel) || r == ".." || len(r) > 2 && r[:3] == "../" {
		return "", fmt.Errorf("output path %q leaves the working directory", rel)
	}
	return p, nil
}

// replaceWith removes whatever is at p, makes its parent, and calls write.
func replaceWith(p string, write func() error) error {
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return write()
}
