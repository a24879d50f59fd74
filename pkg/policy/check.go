package policy

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// Exit codes of RunCheck.
const (
	CheckOK      = 0 // everything valid
	CheckInvalid = 2 // configuration errors, or bad usage
)

// RunCheck implements `castd config check [--config FILE] [--project DIR]...
// [--json]`; args are the arguments after "config check". It loads the user
// config as the daemon would (file, CASTD_* environment), each project's
// project.conf, and prints the Report: text on stdout, or the JSON
// documented on Report with --json. Errors go to stderr, all of them. It
// returns CheckOK when everything is valid and CheckInvalid otherwise.
func RunCheck(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("castd config check", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "user config file (default $XDG_CONFIG_HOME/castd/castd.yaml when it exists)")
	dirs := fs.StringArray("project", nil, "project directory holding project.conf (repeatable)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return CheckOK
		}
		fmt.Fprintf(stderr, "castd config check: %v\n", err)
		return CheckInvalid
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "castd config check: unexpected arguments %q\n", fs.Args())
		return CheckInvalid
	}

	var errs Errors
	cfg, err := Load(LoadOptions{File: *file})
	errs = appendErrors(errs, err)
	var projects []*Project
	for _, dir := range *dirs {
		p, err := LoadProject(dir)
		errs = appendErrors(errs, err)
		if p != nil {
			projects = append(projects, p)
		}
	}
	var rep Report
	if cfg != nil && len(errs) == 0 {
		rep = BuildReport(cfg, projects)
	} else {
		rep = Report{ConfigFile: *file, Errors: []Error(errs.sorted()), BuildStreamSettings: []Error{}, Projects: []ProjectReport{}}
	}
	if *asJSON {
		b, _ := rep.JSON() // a Report always encodes
		_, _ = stdout.Write(b)
	} else if rep.Valid {
		rep.WriteText(stdout)
	}
	for _, e := range rep.Errors {
		fmt.Fprintln(stderr, e.Error())
	}
	if !rep.Valid {
		fmt.Fprintf(stderr, "castd config check: %d error(s)\n", len(rep.Errors))
		return CheckInvalid
	}
	return CheckOK
}

func appendErrors(errs Errors, err error) Errors {
	if err == nil {
		return errs
	}
	var es Errors
	if errors.As(err, &es) {
		return append(errs, es...)
	}
	return append(errs, Error{Msg: err.Error()})
}
