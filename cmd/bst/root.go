package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// app is the state shared by the commands of one bst invocation: global
// flags, output streams and the lazily opened connection to castd.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// stdinFile is the temporary copy of standard input `cas put -` made.
	stdinFile  string
	socketFlag string
	quiet      bool
	ran        bool // a command's RunE was reached: errors are not usage errors
	conn       *castdConn
}

// close releases the connection, if one was opened.
func (a *app) close() {
	if a.conn != nil {
		a.conn.close()
	}
}

// newRoot builds the command tree.
func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "bst",
		Short: "Thin client for the castd REAPI caching proxy",
		Long: `bst talks to the castd daemon over its Unix socket, and to nothing else:
remotes, credentials and execution decisions stay in the daemon.

Exit codes: 0 success, 1 the request or action failed, 2 usage error;
'bst run' exits with the action's own exit code.`,
		Example:           "  bst status\n  bst cas put ./dir\n  bst run -- make test",
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              noArgsSuggest,
		PersistentPreRunE: func(*cobra.Command, []string) error { a.ran = true; return nil },
		RunE:              groupRun,
	}
	root.PersistentFlags().StringVar(&a.socketFlag, "socket", "", "castd socket (default $CASTD_SOCKET, else castd's default socket)")
	root.PersistentFlags().BoolVarP(&a.quiet, "quiet", "q", false, "no progress or status lines on stderr")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usagef("%v", err) })
	root.AddCommand(
		newStatusCmd(a), newRemotesCmd(a), newConfigCmd(a), newRunCmd(a),
		newCASCmd(a), newACCmd(a), newAssetCmd(a, "artifact"), newAssetCmd(a, "source"),
		newScrubCmd(a),
	)
	fixCompletionCmd(root)
	return root
}

// fixCompletionCmd makes `bst completion SHELL` with an unknown shell a
// usage error: cobra's own command prints its help and exits 0.
func fixCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, s := range c.Commands() {
			shells = append(shells, s.Name())
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown shell %q: bst completion supports %s", args[0], strings.Join(shells, ", "))
			}
			return nil
		}
		c.RunE = groupRun
	}
}

// noArgsSuggest rejects arguments of a command that only holds
// subcommands, suggesting the closest subcommand to a typo.
func noArgsSuggest(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default for its own suggestions
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usagef("%s", msg)
}

// groupRun is the RunE of commands that only hold subcommands: without one
// they are a usage error (cobra reports unknown subcommands itself).
func groupRun(cmd *cobra.Command, _ []string) error {
	return usagef("%s needs a subcommand", cmd.CommandPath())
}

// exactArgs is cobra.ExactArgs as a usage error naming what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s expects %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
