// Package integration_test starts the real castd binary on temporary
// sockets and store directories and drives it with gRPC clients, the way
// Bazel or bst would.
package integration_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// castdBin is the castd binary built once by TestMain.
var castdBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	// CASTD_TEST_BIN runs a castd built beforehand, for profiling it with
	// perf (a binary removed after the run has no symbols left to read).
	if bin := os.Getenv("CASTD_TEST_BIN"); bin != "" {
		castdBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "castd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	castdBin = filepath.Join(dir, "castd")
	args := []string{"build", "-o", castdBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/castd/castd/cmd/castd")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: building castd:", err)
		return 1
	}
	return m.Run()
}
