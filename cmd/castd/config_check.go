package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/castd/castd/pkg/policy"
)

// configCheck implements `castd config check [--config FILE] [--project
// DIR]... [--json]`; args are the arguments after "config check". It
// prints policy.Check's Report: text on stdout, or the JSON documented on
// policy.Report with --json. Errors go to stderr, all of them. It returns
// exitOK when everything is valid and exitUsage for configuration errors
// and bad usage alike.
func configCheck(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("castd config check", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "user config file (default $XDG_CONFIG_HOME/castd/castd.yaml when it exists)")
	dirs := fs.StringArray("project", nil, "project directory holding project.conf (repeatable)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "castd config check: %v\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "castd config check: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	rep := policy.Check(*file, *dirs)
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
		return exitUsage
	}
	return exitOK
}
