// Command bst is the thin castd client. It talks to the castd daemon over
// its Unix socket only (--socket, $CASTD_SOCKET, else castd's default
// path), so every remote, credential and scenario decision stays in the
// daemon.
//
// Usage:
//
//	bst status [--json]
//	bst remotes [--project DIR] [--json]
//	bst run [flags] -- CMD ARGS...
//	bst cas put PATH... | cas get DIGEST [-o PATH] | cas ls DIGEST
//	bst ac get ACTION_DIGEST [--json]
//	bst artifact push|pull NAME DIR
//	bst source push|pull KEY DIR
//	bst config check [--project DIR]... [--json]
//	bst scrub [--rate BYTES] [--json]
//	bst completion bash|zsh|fish
//
// cas, ac, artifact and source take --digest-function (sha256, the
// default, sha1, md5, sha384, sha512 or blake3): the function digests are
// computed, sent and read in.
//
// Exit codes: 0 success, 1 the request or action failed, 2 usage error;
// `bst run` exits with the action's own exit code.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes shared by every command.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	os.Exit(executeWithInput(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// execute runs the command line args with empty standard input and
// returns the process exit code.
func execute(args []string, stdout, stderr io.Writer) int {
	return executeWithInput(args, strings.NewReader(""), stdout, stderr)
}

// executeWithInput is execute reading standard input from stdin.
func executeWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	defer a.close()
	root := newRoot(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee) && ee.err == nil:
		return ee.code // the command already said what happened
	case errors.As(err, &ee):
		fmt.Fprintln(stderr, prefixed(message(ee.err)))
		if ee.code == exitUsage {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ee.code
	case !a.ran:
		// cobra rejected the command line before any command ran.
		fmt.Fprintf(stderr, "bst: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintln(stderr, prefixed(message(err)))
	return exitFailed
}

// prefixed puts "bst: " before msg unless it already names a bst command
// ("bst run needs a command after --").
func prefixed(msg string) string {
	if strings.HasPrefix(msg, "bst ") {
		return msg
	}
	return "bst: " + msg
}

// exitError carries the exit code of a failed command. A nil err means the
// message was already printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usagef is a usage error: exit code 2 and a pointer to --help.
func usagef(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode ends a command with code after it printed its own output.
func exitCode(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// message renders err for people: a gRPC status as "CODE: message"
// without the "rpc error" prefix, and a lost connection to castd in plain
// words rather than gRPC's transport text.
func message(err error) string {
	if se, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		s := se.GRPCStatus()
		if s.Code() == codes.Unavailable && isTransportFailure(s.Message()) {
			return lostConnection(s.Message())
		}
		return fmt.Sprintf("%s: %s", codeName(s.Code()), s.Message())
	}
	return err.Error()
}

// isTransportFailure tells gRPC's own connection errors (the socket went
// away, castd closed the connection) from an UNAVAILABLE castd sent.
func isTransportFailure(msg string) bool {
	// gRPC's own transport errors start the message; castd relays an
	// upstream's failure with the upstream named first ("upstream[1] HOST:
	// connection error: …"), which is castd answering, not castd gone.
	for _, s := range []string{"connection error:", "error reading from server", "transport is closing"} {
		if strings.HasPrefix(msg, s) {
			return true
		}
	}
	return false
}

// lostConnection says that castd went away, with the system's reason
// ("connect: no such file or directory") taken from gRPC's text.
func lostConnection(msg string) string {
	reason := strings.TrimRight(msg, `"`)
	if i := strings.LastIndex(reason, "connect: "); i >= 0 {
		reason = reason[i:]
	} else if i := strings.LastIndex(reason, ": "); i >= 0 {
		reason = reason[i+2:]
	}
	return "lost the connection to castd (it stopped or restarted: " + reason + "); " + startHint
}

// codeName turns a gRPC code into lower-case words: NotFound → "not found".
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
