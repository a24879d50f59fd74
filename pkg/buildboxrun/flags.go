// Package buildboxrun is castd standing in for BuildStream 2's sandbox
// runner, buildbox-run: BuildStream runs it once per sandboxed command
// (its sandbox/_sandboxbuildboxrun.py) with an Action proto in a file and
// the socket of its local CAS daemon (castd as buildbox-casd, or a real
// buildbox-casd). The runner fetches the Command and the input root from
// that CAS, runs the command with the input root as the sandbox's / under
// bubblewrap (pkg/localexec's RunSysroot: the same sandbox castd's own
// local execution uses), stores the outputs in the same CAS and writes the
// ActionResult proto to a file.
//
// Its exit status is about the runner, not the command: a command that
// fails is exit 0 with the command's code in the ActionResult.
package buildboxrun

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/castd/castd/internal/longflags"
	"github.com/castd/castd/pkg/localexec"
)

// Config is a parsed buildbox-run command line.
type Config struct {
	Capabilities bool   // --capabilities: print what is supported and exit
	Remote       string // --remote: the CAS, "unix:PATH" from BuildStream
	Instance     string // --instance: the instance name for that CAS
	Action       string // --action: file holding the Action proto
	ActionResult string // --action-result: file the ActionResult proto is written to
	// NoLogsCapture (--no-logs-capture): the command writes to the runner's
	// own stdout and stderr, and the result holds no stdout/stderr blobs.
	NoLogsCapture bool
	// NestedACEnableUpdate (--nested-ac-enable-update) is accepted and has
	// no effect: it is about the remote APIs socket inside the sandbox
	// (platform:remoteApisSocketPath), which castd does not offer.
	NestedACEnableUpdate bool
	BindMounts           []localexec.BindMount // --bind-mount=SRC:DST, repeatable
}

// Parse parses a buildbox-run command line (args without the program
// name). Flags that are not BuildStream's are one error naming them all.
// Unless --capabilities is given, --remote, --action and --action-result
// are required.
func Parse(args []string) (Config, error) {
	var c Config
	var binds []string
	fs := pflag.NewFlagSet("buildbox-run", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.BoolVar(&c.Capabilities, "capabilities", false, "print the supported capabilities, one a line, and exit")
	fs.StringVar(&c.Remote, "remote", "", "CAS to read the action from and store outputs in (unix:PATH)")
	fs.StringVar(&c.Instance, "instance", "", "instance name for the CAS")
	fs.StringVar(&c.Action, "action", "", "file holding the Action proto")
	fs.StringVar(&c.ActionResult, "action-result", "", "file to write the ActionResult proto to")
	fs.BoolVar(&c.NoLogsCapture, "no-logs-capture", false, "let the command write to this process's stdout and stderr")
	fs.BoolVar(&c.NestedACEnableUpdate, "nested-ac-enable-update", false, "accepted; no effect")
	fs.StringArrayVar(&binds, "bind-mount", nil, "SRC:DST, a host path mounted in the sandbox")
	if unknown := longflags.Unknown(fs, args); len(unknown) > 0 {
		return Config{}, fmt.Errorf("buildbox-run: unknown flag(s) %s (castd accepts the flags BuildStream 2 passes: %s)",
			strings.Join(unknown, ", "), strings.Join(longflags.Names(fs), ", "))
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("buildbox-run: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("buildbox-run: unexpected argument(s) %s", strings.Join(fs.Args(), " "))
	}
	for _, b := range binds {
		src, dst, ok := strings.Cut(b, ":")
		if !ok || src == "" || dst == "" {
			return Config{}, fmt.Errorf("buildbox-run: --bind-mount=%s: expected SRC:DST", b)
		}
		c.BindMounts = append(c.BindMounts, localexec.BindMount{Source: src, Target: dst})
	}
	if c.Capabilities {
		return c, nil
	}
	var missing []string
	for name, v := range map[string]string{"--remote": c.Remote, "--action": c.Action, "--action-result": c.ActionResult} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Config{}, fmt.Errorf("buildbox-run: %s required", strings.Join(missing, ", "))
	}
	return c, nil
}
