package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/policy"
)

func newConfigCmd(a *app) *cobra.Command {
	group := &cobra.Command{Use: "config", Short: "Inspect castd's live configuration", Args: noArgsSuggest, RunE: groupRun}
	var dirs []string
	var asJSON bool
	check := &cobra.Command{
		Use:   "check [--project DIR]... [--json]",
		Short: "Show the daemon's resolved configuration (as 'castd config check')",
		Long: `Prints the report of 'castd config check', computed by the running daemon
for its live configuration: the scenario, pull order and push set of the
global user remotes and of each project directory given.`,
		Example: "  bst config check\n  bst config check --project ~/src/a --project ~/src/b --json",
		Args:    exactArgs(0, "no arguments (projects are --project DIR)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.configCheck(cmd.Context(), dirs, asJSON)
		},
	}
	check.Flags().StringArrayVar(&dirs, "project", nil, "project directory holding project.conf (repeatable)")
	check.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON, exactly as 'castd config check --json'")
	group.AddCommand(check)
	return group
}

// configCheck prints Control.ConfigReport; an invalid report exits 1.
func (a *app) configCheck(ctx context.Context, dirs []string, asJSON bool) error {
	abs := make([]string, len(dirs))
	for i, d := range dirs {
		var err error
		if abs[i], err = filepath.Abs(d); err != nil {
			return err
		}
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	resp, err := c.control().ConfigReport(ctx, &castdpb.ConfigReportRequest{ProjectDirs: abs})
	if err != nil {
		return err
	}
	var rep policy.Report
	if err := json.Unmarshal([]byte(resp.GetReportJson()), &rep); err != nil {
		return fmt.Errorf("castd sent an unreadable report: %w", err)
	}
	if asJSON {
		_, err = fmt.Fprint(a.stdout, resp.GetReportJson())
	} else if rep.Valid {
		rep.WriteText(a.stdout)
	}
	for _, e := range rep.Errors {
		fmt.Fprintln(a.stderr, e.Error())
	}
	if !rep.Valid {
		return fmt.Errorf("the configuration has %d error(s)", len(rep.Errors))
	}
	return err
}
