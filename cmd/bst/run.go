//lint:file-ignore SA1019 REAPI 2.0 servers read output_files, output_directories and Command.platform; bst sets them beside the 2.1/2.2 fields
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/castd/castd/pkg/digest"
)

// runOptions are the flags of bst run.
type runOptions struct {
	target
	input    string
	outputs  []string
	env      []string
	platform []string
	timeout  time.Duration
	noCache  bool
}

func newRunCmd(a *app) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD ARGS...",
		Short: "Run a command as a REAPI action through castd and write its outputs back",
		Long: `Uploads the input directory (default: the current directory, minus what
.bstignore excludes, with gitignore syntax), builds the Command and Action,
executes it through castd (cache, remote or local execution: castd decides),
prints the action's stdout and stderr, writes its outputs into the input
directory and exits with the action's exit code. How the result was obtained
(local cache hit, remote cache hit, remote execution, local execution) is
said on stderr. Output paths and the working directory are relative to the
current directory when it is inside the input directory; a declared output
the action did not produce gets a warning.

The action's environment is empty by default (no PATH, HOME or anything
else from your shell), so that its result does not depend on who ran it.
castd looks a bare command name up in /bin:/usr/bin, but the command itself
sees no PATH: give what it needs with --env, e.g.
--env PATH=/usr/local/bin:/usr/bin:/bin.`,
		Example: "  bst run --env PATH=/usr/bin:/bin --output out/ -- make -C src all\n" +
			"  bst run --env CC=gcc --timeout 10m --output a.out -- sh -c 'cc -o a.out main.c'",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs a command after --", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd.Context(), o, args)
		},
	}
	addTargetFlags(cmd, &o.target)
	f := cmd.Flags()
	f.StringVar(&o.input, "input", ".", "input directory uploaded as the action's input root")
	f.StringArrayVar(&o.outputs, "output", nil, "output path to collect (repeatable; a trailing / marks a directory for REAPI 2.0 servers)")
	f.StringArrayVar(&o.env, "env", nil, "environment variable K=V (repeatable); the action gets no other, not even PATH")
	f.StringArrayVar(&o.platform, "platform", nil, "platform property K=V (repeatable)")
	f.DurationVar(&o.timeout, "timeout", 0, "action timeout, e.g. 10m (0: castd's default)")
	f.BoolVar(&o.noCache, "no-cache", false, "skip the action cache lookup (the result is still cached)")
	return cmd
}

// workingDir is the action's working directory: the current directory
// relative to the input root when it lies inside it, else the root.
func workingDir(inputAbs string) string {
	cwd, err := os.Getwd()
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(inputAbs, cwd)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	return filepath.ToSlash(rel)
}

// buildCommand makes the REAPI Command: arguments, environment sorted by
// name, output_paths (2.1) plus output_files/output_directories (2.0), and
// the platform (also set on the Action, where REAPI 2.2 reads it).
func buildCommand(args, env, outputs, platform []string, wd string) (*repb.Command, error) {
	cmd := &repb.Command{Arguments: args, WorkingDirectory: wd}
	vars, err := pairs("--env", env)
	if err != nil {
		return nil, err
	}
	for _, kv := range vars {
		cmd.EnvironmentVariables = append(cmd.EnvironmentVariables, &repb.Command_EnvironmentVariable{Name: kv[0], Value: kv[1]})
	}
	for _, o := range outputs {
		p := strings.TrimSuffix(o, "/")
		if p == "" || filepath.IsAbs(p) {
			return nil, usagef("--output %q: expected a relative path", o)
		}
		cmd.OutputPaths = append(cmd.OutputPaths, p)
		if strings.HasSuffix(o, "/") {
			cmd.OutputDirectories = append(cmd.OutputDirectories, p)
		} else {
			cmd.OutputFiles = append(cmd.OutputFiles, p)
		}
	}
	sort.Strings(cmd.OutputPaths)
	sort.Strings(cmd.OutputFiles)
	sort.Strings(cmd.OutputDirectories)
	cmd.Platform, err = buildPlatform(platform)
	return cmd, err
}

// buildPlatform sorts properties by name, then value, as REAPI requires.
func buildPlatform(props []string) (*repb.Platform, error) {
	kvs, err := pairs("--platform", props)
	if err != nil || len(kvs) == 0 {
		return nil, err
	}
	p := &repb.Platform{}
	for _, kv := range kvs {
		p.Properties = append(p.Properties, &repb.Platform_Property{Name: kv[0], Value: kv[1]})
	}
	return p, nil
}

// pairs splits K=V arguments and sorts them by key, then value; a repeated
// key is allowed (platform properties may repeat).
func pairs(flag string, kvs []string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q: expected K=V", flag, kv)
		}
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out, nil
}

// buildAction makes the Action for the stored Command and input root.
func buildAction(cmdDigest, root digest.Digest, platform *repb.Platform, timeout time.Duration) *repb.Action {
	a := &repb.Action{CommandDigest: cmdDigest.Proto(), InputRootDigest: root.Proto(), Platform: platform}
	if timeout > 0 {
		a.Timeout = durationpb.New(timeout)
	}
	return a
}

// validateRun checks option values cobra cannot.
func validateRun(o runOptions) error {
	if o.timeout < 0 {
		return usagef("--timeout %v: must not be negative", o.timeout)
	}
	if fi, err := os.Stat(o.input); err != nil || !fi.IsDir() {
		return usagef("--input %s: not a directory", o.input)
	}
	return nil
}

// describe is the stderr line saying how the result was obtained.
func describe(resp *repb.ExecuteResponse) string {
	msg := strings.ToLower(resp.GetMessage())
	for _, how := range []string{"local cache hit", "remote cache hit", "remote execution", "local execution"} {
		if strings.HasPrefix(msg, how) {
			return how
		}
	}
	if resp.GetCachedResult() {
		return "cache hit"
	}
	if w := resp.GetResult().GetExecutionMetadata().GetWorker(); w != "" {
		return fmt.Sprintf("executed on %s", w)
	}
	return "executed"
}
