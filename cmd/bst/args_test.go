//lint:file-ignore SA1019 the tests check the REAPI 2.0 fields bst sets for old servers
package main

import (
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
)

func TestParseDigest(t *testing.T) {
	good := digest.OfBytes([]byte("x"))
	for _, c := range []struct{ name, in string }{
		{"no slash", good.Hash},
		{"size not a number", good.Hash + "/abc"},
		{"short hash", "abc/1"},
		{"negative size", good.Hash + "/-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A malformed digest is the user's mistake: a usage error, exit 2.
			_, err := functionFlag{}.parseDigest(c.in)
			if ee, ok := err.(*exitError); !ok || ee.code != exitUsage {
				t.Errorf("parseDigest(%q) = %v, want a usage error", c.in, err)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		// The printed form parses back to the same digest.
		if d, err := (functionFlag{}).parseDigest(good.String()); err != nil || d != good {
			t.Errorf("got %v, %v", d, err)
		}
	})
}

func TestBuildCommand(t *testing.T) {
	// The Command must be canonical (sorted env and outputs) so equal runs hit the cache.
	cmd, err := buildCommand([]string{"sh", "-c", "x"}, []string{"B=2", "A=1"}, []string{"out/", "a.txt"}, []string{"os=linux", "arch=amd64"}, "sub")
	if err != nil {
		t.Fatal(err)
	}
	for name, ok := range map[string]bool{
		"env sorted":            cmd.GetEnvironmentVariables()[0].GetName() == "A",
		"output_paths sorted":   slices.Equal(cmd.GetOutputPaths(), []string{"a.txt", "out"}),
		"2.0 output_files":      slices.Equal(cmd.GetOutputFiles(), []string{"a.txt"}),
		"2.0 output_dirs":       slices.Equal(cmd.GetOutputDirectories(), []string{"out"}),
		"platform sorted":       cmd.GetPlatform().GetProperties()[0].GetName() == "arch",
		"working directory set": cmd.GetWorkingDirectory() == "sub",
	} {
		t.Run(name, func(t *testing.T) {
			if !ok {
				t.Errorf("command %v", cmd)
			}
		})
	}
	for _, bad := range [][]string{{"NOEQUALS"}, {"=v"}} {
		t.Run("bad env "+bad[0], func(t *testing.T) {
			// K=V is required; anything else is a usage error.
			if _, err := buildCommand([]string{"x"}, bad, nil, nil, ""); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		name string
		resp *repb.ExecuteResponse
		want string
	}{
		{"castd message names the path", &repb.ExecuteResponse{Message: "Remote cache hit from cache.example.com", CachedResult: true}, "remote cache hit"},
		{"local execution message", &repb.ExecuteResponse{Message: "local execution"}, "local execution"},
		{"other server: cached flag only", &repb.ExecuteResponse{CachedResult: true}, "cache hit"},
		{"other server: worker name", &repb.ExecuteResponse{Result: &repb.ActionResult{ExecutionMetadata: &repb.ExecutedActionMetadata{Worker: "w1"}}}, "executed on w1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The stderr line relies on castd's message first, REAPI fields second.
			if got := describe(c.resp); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestAsDirectory(t *testing.T) {
	dir, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&repb.Directory{
		Files: []*repb.FileNode{{Name: "a", Digest: digest.OfBytes(nil).Proto()}},
	})
	for _, c := range []struct {
		name string
		in   []byte
		want bool
	}{
		{"canonical directory", dir, true},
		{"empty blob is a file", nil, false},
		{"text that decodes as unknown fields", []byte("hello world\n"), false},
		{"random binary", []byte{0xff, 0x00, 0x13}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// cas get must not mistake file contents for a tree.
			if got := asDirectory(c.in); got != c.want {
				t.Errorf("asDirectory = %v, want %v", got, c.want)
			}
		})
	}
}
