//lint:file-ignore SA1019 results from REAPI 2.0 servers carry symlinks in the per-kind lists
package main

import (
	"context"
	"fmt"
	"io"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/castd/castd/pkg/digest"
)

func newACCmd(a *app) *cobra.Command {
	group := &cobra.Command{Use: "ac", Short: "Read castd's action cache", Args: noArgsSuggest, RunE: groupRun}
	var t target
	var fn functionFlag
	var asJSON bool
	get := &cobra.Command{
		Use:   "get ACTION_DIGEST",
		Short: "Print the cached ActionResult of an action",
		Long: `Prints the ActionResult cached for ACTION_DIGEST (HASH/SIZE): exit code,
outputs and stdout/stderr digests; with --json the ActionResult in the
proto3 JSON mapping (field names as in the .proto). A missing entry exits 1
with "not found".`,
		Example: "  bst ac get 1f2e...9c/138\n  bst ac get --json 1f2e...9c/138 | jq .exit_code",
		Args:    exactArgs(1, "one ACTION_DIGEST (HASH/SIZE)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := fn.parseDigest(args[0])
			if err != nil {
				return err
			}
			return a.acGet(cmd.Context(), t, d, asJSON)
		},
	}
	addTargetFlags(get, &t)
	addFunctionFlag(get, &fn)
	get.Flags().BoolVar(&asJSON, "json", false, "print the ActionResult as protojson")
	group.AddCommand(get)
	return group
}

func (a *app) acGet(ctx context.Context, t target, d digest.Digest, asJSON bool) error {
	instance, err := a.resolve(ctx, t)
	if err != nil {
		return err
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	res, err := c.actionCache().GetActionResult(ctx, &repb.GetActionResultRequest{
		InstanceName: instance, ActionDigest: d.Proto(), DigestFunction: d.Func.Proto(),
	})
	if err != nil {
		return fmt.Errorf("action %s: %s", d, message(err))
	}
	if asJSON {
		b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(res)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	writeActionResult(a.stdout, res)
	return nil
}

// writeActionResult summarises an ActionResult for people.
func writeActionResult(w io.Writer, r *repb.ActionResult) {
	fmt.Fprintf(w, "exit code: %d\n", r.GetExitCode())
	for _, f := range r.GetOutputFiles() {
		x := ""
		if f.GetIsExecutable() {
			x = " (executable)"
		}
		fmt.Fprintf(w, "file       %s  %s%s\n", f.GetPath(), protoDigestString(f.GetDigest()), x)
	}
	for _, d := range r.GetOutputDirectories() {
		fmt.Fprintf(w, "directory  %s  tree %s\n", d.GetPath(), protoDigestString(d.GetTreeDigest()))
	}
	for _, s := range outputSymlinks(r) {
		fmt.Fprintf(w, "symlink    %s -> %s\n", s.GetPath(), s.GetTarget())
	}
	fmt.Fprintf(w, "stdout:    %s\nstderr:    %s\n", protoDigestString(r.GetStdoutDigest()), protoDigestString(r.GetStderrDigest()))
	if m := r.GetExecutionMetadata(); m.GetWorker() != "" {
		fmt.Fprintf(w, "worker:    %s\n", m.GetWorker())
	}
}

// outputSymlinks is every output symlink: the REAPI 2.1 list and the
// deprecated per-kind lists, without duplicates.
func outputSymlinks(r *repb.ActionResult) []*repb.OutputSymlink {
	seen := map[string]bool{}
	var out []*repb.OutputSymlink
	for _, list := range [][]*repb.OutputSymlink{r.GetOutputSymlinks(), r.GetOutputFileSymlinks(), r.GetOutputDirectorySymlinks()} {
		for _, s := range list {
			if !seen[s.GetPath()] {
				seen[s.GetPath()] = true
				out = append(out, s)
			}
		}
	}
	return out
}
