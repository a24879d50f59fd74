package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/pkg/policy"
)

// remotesJSON is the --json shape of bst remotes: the instance name to use
// and the project's entry of the `castd config check --json` report.
type remotesJSON struct {
	InstanceName string                `json:"instance_name"`
	Project      *policy.ProjectReport `json:"project"`
}

func newRemotesCmd(a *app) *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "remotes [--project DIR]",
		Short: "Register a project with castd and show its resolved remotes",
		Long: `Registers DIR/project.conf with castd and prints the remotes castd resolved
for it: the pull order per role (CAS, action cache, remote asset) with each
server's origin, the push set, the execution scenario and the REAPI instance
name clients must use for the project. Credentials are never printed.`,
		Example: "  bst remotes --project ~/src/myproject\n  bst remotes --json | jq -r .instance_name",
		Args:    exactArgs(0, "no arguments (the project is --project DIR)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.remotes(cmd.Context(), dir, asJSON)
		},
	}
	cmd.Flags().StringVar(&dir, "project", ".", "project directory holding project.conf")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (shape in the README)")
	return cmd
}

func (a *app) remotes(ctx context.Context, dir string, asJSON bool) error {
	resp, err := a.registerProject(ctx, dir)
	if err != nil {
		return err
	}
	out, err := parseRemotes(resp)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(a.stdout, out)
	}
	writeRemotesText(a.stdout, out)
	return nil
}

// registerProject sends dir/project.conf to Control.RegisterProject.
func (a *app) registerProject(ctx context.Context, dir string) (*castdpb.RegisterProjectResponse, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	conf, err := os.ReadFile(filepath.Join(abs, "project.conf"))
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", dir, err)
	}
	c, err := a.connect()
	if err != nil {
		return nil, err
	}
	return c.control().RegisterProject(ctx, &castdpb.RegisterProjectRequest{ProjectConf: conf, BaseDir: abs})
}

// parseRemotes picks the project's entry (the last one: the global entry
// comes first) out of the report in resp.
func parseRemotes(resp *castdpb.RegisterProjectResponse) (remotesJSON, error) {
	var rep policy.Report
	if err := json.Unmarshal([]byte(resp.GetReportJson()), &rep); err != nil {
		return remotesJSON{}, fmt.Errorf("castd sent an unreadable report: %w", err)
	}
	out := remotesJSON{InstanceName: resp.GetInstanceName()}
	if n := len(rep.Projects); n > 0 {
		out.Project = &rep.Projects[n-1]
	}
	return out, nil
}

// writeRemotesText prints the resolution for people.
func writeRemotesText(w io.Writer, r remotesJSON) {
	fmt.Fprintf(w, "instance name: %q\n", r.InstanceName)
	p := r.Project
	if p == nil {
		fmt.Fprintln(w, "no resolution reported")
		return
	}
	fmt.Fprintf(w, "project:       %s\n", orDash(p.Project))
	fmt.Fprintf(w, "scenario:      %s\n", p.Scenario)
	writeRoles(w, "pull order", p.Pull)
	writeRoles(w, "push to", p.Push)
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func writeRoles(w io.Writer, title string, r policy.RoleReport) {
	fmt.Fprintf(w, "%s:\n", title)
	for _, role := range []struct {
		name    string
		remotes []policy.RemoteReport
	}{{"cas", r.CAS}, {"action cache", r.ActionCache}, {"remote asset", r.RemoteAsset}} {
		if len(role.remotes) == 0 {
			fmt.Fprintf(w, "  %s: none\n", role.name)
			continue
		}
		fmt.Fprintf(w, "  %s:\n", role.name)
		for i, rm := range role.remotes {
			fmt.Fprintf(w, "    %d. %s%s  %s, origin %s (%s)%s\n", i+1, rm.URL, instanceSuffix(rm.InstanceName),
				rm.Type, rm.Origin, rm.Section, authText(rm.Auth))
		}
	}
}

// authText names the configured credentials; values are never shown.
func authText(auth map[string]string) string {
	if len(auth) == 0 {
		return ""
	}
	var names []string
	for _, k := range []string{"server_cert", "client_cert", "client_key", "access_token"} {
		if _, ok := auth[k]; ok {
			names = append(names, k)
		}
	}
	return ", auth: " + strings.Join(names, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}
