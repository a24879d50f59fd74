package main

import (
	"context"
	"fmt"
	"os"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"
	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/spf13/cobra"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
)

// urnPrefix is BuildStream's URN namespace for artifact and source refs.
const urnPrefix = "urn:fdc:buildstream.build:2020:"

// assetJSON is the --json output of artifact/source push and pull.
type assetJSON struct {
	URI    string `json:"uri"`
	Digest string `json:"digest"`
}

// newAssetCmd builds `bst artifact` or `bst source` (kind), whose refs are
// stored under urn:fdc:buildstream.build:2020:KIND:NAME.
func newAssetCmd(a *app, kind string) *cobra.Command {
	ref := map[string]string{"artifact": "NAME", "source": "KEY"}[kind]
	group := &cobra.Command{
		Use:   kind,
		Short: fmt.Sprintf("Push and pull %s directories by %s through the Remote Asset API", kind, ref),
		Args:  noArgsSuggest,
		RunE:  groupRun,
	}
	for _, pull := range []bool{false, true} {
		group.AddCommand(newAssetXferCmd(a, kind, ref, pull))
	}
	return group
}

func newAssetXferCmd(a *app, kind, ref string, pull bool) *cobra.Command {
	var t target
	var fn functionFlag
	var asJSON bool
	verb, short := "push", "Upload DIR and record it as %s %s"
	if pull {
		verb, short = "pull", "Fetch %s %s (locally or from castd's remotes) into DIR"
	}
	cmd := &cobra.Command{
		Use:     fmt.Sprintf("%s %s DIR", verb, ref),
		Short:   fmt.Sprintf(short, kind, ref),
		Long:    fmt.Sprintf("The ref is stored as the URI %s%s:%s.", urnPrefix, kind, ref),
		Example: fmt.Sprintf("  bst %s %s myproject/hello/abc123 ./out", kind, verb),
		Args:    exactArgs(2, ref+" and DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			uri := urnPrefix + kind + ":" + args[0]
			if pull {
				return a.assetPull(cmd.Context(), t, fn.fn, uri, args[1], asJSON)
			}
			return a.assetPush(cmd.Context(), t, fn.fn, uri, args[1], asJSON)
		},
	}
	addTargetFlags(cmd, &t)
	addFunctionFlag(cmd, &fn)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"uri","digest"}`)
	return cmd
}

// assetPush uploads dir hashed with fn and binds its root Directory to uri
// in fn.
func (a *app) assetPush(ctx context.Context, t target, fn digest.Function, uri, dir string, asJSON bool) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	cas, instance, err := a.casFor(ctx, t)
	if err != nil {
		return err
	}
	m := a.newMeter("uploaded", treeSize([]string{dir}))
	root, err := localexec.UploadDirIn(ctx, withMeter(cas, m), fn, dir)
	m.finish()
	if err != nil {
		return err
	}
	_, err = a.conn.push().PushDirectory(ctx, &assetpb.PushDirectoryRequest{
		InstanceName: instance, Uris: []string{uri}, RootDirectoryDigest: root.Proto(),
		DigestFunction: fn.Proto(),
	})
	if err != nil {
		return fmt.Errorf("push %s: %s", uri, message(err))
	}
	return a.printAsset(uri, root, asJSON)
}

// assetPull resolves uri to a root Directory in fn and materialises it in
// dir.
func (a *app) assetPull(ctx context.Context, t target, fn digest.Function, uri, dir string, asJSON bool) error {
	if err := checkEmptyDir(dir); err != nil {
		return err
	}
	cas, instance, err := a.casFor(ctx, t)
	if err != nil {
		return err
	}
	resp, err := a.conn.fetch().FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{
		InstanceName: instance, Uris: []string{uri}, DigestFunction: fn.Proto(),
	})
	if err == nil && resp.GetStatus().GetCode() != 0 {
		err = fmt.Errorf("%s", resp.GetStatus().GetMessage())
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %s", uri, message(err))
	}
	if got := resp.GetDigestFunction(); got != fn.Proto() && (got != repb.DigestFunction_UNKNOWN || fn != digest.SHA256) {
		return fmt.Errorf("fetch %s: castd answered in digest function %s, asked for %s", uri, got, fn.Proto())
	}
	root, err := digest.FromProtoIn(fn, resp.GetRootDirectoryDigest())
	if err != nil {
		return fmt.Errorf("fetch %s: castd sent a bad digest: %s", uri, message(err))
	}
	m := a.newMeter("downloaded", -1)
	defer m.finish()
	if err := localexec.MaterializeDir(ctx, withMeter(cas, m), root, dir); err != nil {
		return err
	}
	return a.printAsset(uri, root, asJSON)
}

func (a *app) printAsset(uri string, root digest.Digest, asJSON bool) error {
	if asJSON {
		return writeJSON(a.stdout, assetJSON{URI: uri, Digest: root.String()})
	}
	_, err := fmt.Fprintf(a.stdout, "%s  %s\n", root, uri)
	return err
}
