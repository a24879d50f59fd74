// Command castd is a local caching proxy for the Remote Execution API v2. It
// serves REAPI (CAS, ByteStream, ActionCache, Capabilities), gRPC health and
// reflection on a Unix socket (and optionally TCP), from a local store.
//
// Usage:
//
//	castd [serve] [--config FILE] [flags]   run the daemon (the default)
//	castd config check [--config FILE] [--project DIR]... [--json]
//	castd version, castd --version, castd -v
//	castd casd [buildbox-casd flags] CACHEDIR, or castd run as buildbox-casd
//	castd run-action [buildbox-run flags], or castd run as buildbox-run
//
// main is wiring only: each step lives in a small function of this package
// that the tests reach.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/castd/castd/pkg/buildboxrun"
	"github.com/castd/castd/pkg/casd"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	switch filepath.Base(os.Args[0]) {
	case "buildbox-casd":
		os.Exit(casd.Main(os.Args[1:], os.Stdout, os.Stderr, version))
	case "buildbox-run":
		os.Exit(buildboxrun.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // start-up or serving failed (store locked, socket busy, ...)
	exitUsage  = 2 // bad command line or configuration
)

// run dispatches the subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 {
		switch args[0] {
		case "serve", "config", "version", "help", "casd", "run-action":
			cmd, rest = args[0], args[1:]
		}
	}
	switch cmd {
	case "config":
		return configCommand(rest, stdout, stderr)
	case "casd":
		return casd.Main(rest, stdout, stderr, version)
	case "run-action":
		return buildboxrun.Main(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help":
		return serveCommand([]string{"--help"}, stdout, stderr)
	}
	return serveCommand(rest, stdout, stderr)
}

const usageText = `castd — local caching proxy for the Remote Execution API v2

Usage:
  castd [serve] [--config FILE] [flags]   run the daemon (default command)
  castd config check [--config FILE] [--project DIR]... [--json]
                                          validate configuration and exit
  castd casd [flags] CACHEDIR             serve as BuildStream's buildbox-casd
                                          (also when run under that name)
  castd run-action [flags]                run one sandboxed action as BuildStream's
                                          buildbox-run (also under that name)
  castd version, castd --version, -v      print the version
  castd help, castd --help                show this text and the flags

Without a config file castd serves a local-only cache on
$XDG_RUNTIME_DIR/castd/castd.sock (else /tmp/castd-UID/castd.sock) with its
store in $XDG_CACHE_HOME/castd (else ~/.cache/castd). Settings come from
built-in defaults, then the config file ($XDG_CONFIG_HOME/castd/castd.yaml
when it exists), then CASTD_* environment variables, then flags.

Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when start-up or
serving fails, 2 for a bad command line or configuration.
`

func versionString() string {
	s := "castd " + version + " " + runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				s += " " + kv.Value
			}
		}
	}
	return s
}
