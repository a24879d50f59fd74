package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/castd/castd/pkg/policy"
)

// serveCommand runs the daemon until SIGINT/SIGTERM and returns the exit
// code: 2 for a bad command line or config, 1 when start-up or serving
// fails, 0 after a clean shutdown.
func serveCommand(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("castd serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "configuration file (default $CASTD_CONFIG, else $XDG_CONFIG_HOME/castd/castd.yaml when it exists)")
	showVersion := fs.BoolP("version", "v", false, "print the version and exit (same as castd version)")
	policy.RegisterFlags(fs)
	fs.Usage = func() {} // printed below: full help on stdout, errors on stderr
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, usageText, "\nFlags:\n", fs.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "castd: %v (see castd --help)\n", err)
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "castd: unexpected argument %q (see castd --help)\n", fs.Arg(0))
		return exitUsage
	}

	if *configFile == "" {
		*configFile = os.Getenv("CASTD_CONFIG")
	}
	loadOpts := policy.LoadOptions{File: *configFile, Flags: fs}
	cfg, err := policy.Load(loadOpts)
	if err != nil {
		fmt.Fprintln(stderr, "castd: configuration:", err)
		return exitUsage
	}
	dc, err := daemonConfigFrom(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "castd:", err)
		return exitFailed
	}
	log, level, err := newLogger(dc.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "castd: configuration:", err)
		return exitUsage
	}
	if cfg.File != "" {
		log.Info("configuration loaded", "file", cfg.File)
	}

	sigs, hups, stopSignals := notifySignals()
	defer stopSignals()
	d, err := startDaemon(dc, log)
	if err != nil {
		// Plain text, not a log record: this is the one line the user
		// must read (a busy socket, a locked store naming its PID).
		fmt.Fprintln(stderr, "castd:", err)
		return exitFailed
	}
	d.level = level
	d.load = func() (*policy.Config, error) { return policy.Load(loadOpts) }
	if err := d.run(sigs, hups); err != nil {
		log.Error("castd stopped with an error", "err", err)
		return exitFailed
	}
	log.Info("castd stopped")
	return exitOK
}

// configCommand runs `castd config check ...`.
func configCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: castd config check [--config FILE] [--project DIR]... [--json]")
		return exitUsage
	}
	return configCheck(args[1:], stdout, stderr)
}

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
