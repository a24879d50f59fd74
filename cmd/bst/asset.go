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
				return a.assetPull(cmd.Context(), t, uri, args[1], asJSON)
			}
			return a.assetPush(cmd.Context(), t, uri, args[1], asJSON)
		},
	}
	addTargetFlags(cmd, &t)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"uri","digest"}`)
	return cmd
}

// assetPush uploads dir and binds its root Directory to uri.
func (a *app) assetPush(ctx context.Context, t target, uri, dir string, asJSON bool) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	cas, instance, err := a.casFor(ctx, t)
	if err != nil {
		return err
	}
	m := a.newMeter("uploaded", treeSize([]string{dir}))
	root, err := localexec.UploadDir(ctx, withMeter(cas, m), dir)
	m.finish()
	if err != nil {
		return err
	}
	_, err = a.conn.push().PushDirectory(ctx, &assetpb.PushDirectoryRequest{
		InstanceName: instance, Uris: []string{uri}, RootDirectoryDigest: root.Proto(),
		DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return fmt.Errorf("push %s: %s", uri, message(err))
	}
	return a.printAsset(uri, root, asJSON)
}

// assetPull resolves uri to a root Directory and materialises it in dir.
func (a *app) assetPull(ctx context.Context, t target, uri, dir string, asJSON bool) error {
	if err := checkEmptyDir(dir); err != nil {
		return err
	}
	cas, instance, err := a.casFor(ctx, t)
	if err != nil {
		return err
	}
	resp, err := a.conn.fetch().FetchDirectory(ctx, &assetpb.FetchDirectoryRequest{
		InstanceName: instance, Uris: []string{uri}, DigestFunction: repb.DigestFunction_SHA256,
	})
	if err == nil && resp.GetStatus().GetCode() != 0 {
		err = fmt.Errorf("%s", resp.GetStatus().GetMessage())
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %s", uri, message(err))
	}
	root, err := digest.FromProto(resp.GetRootDirectoryDigest())
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
