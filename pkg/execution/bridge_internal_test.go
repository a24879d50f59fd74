//lint:file-ignore SA1019 the golden messages use the REAPI 2.0 output fields on purpose

package execution

import (
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	smpb "github.com/bazelbuild/remote-apis/build/bazel/semver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// parse decodes a golden message in text format.
func parse[M proto.Message](t *testing.T, text string, m M) M {
	t.Helper()
	if err := prototext.Unmarshal([]byte(text), m); err != nil {
		t.Fatalf("golden %q: %v", text, err)
	}
	return m
}

func wantGolden(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("got\n%v\nwant\n%v", prototext.Format(got), prototext.Format(want))
	}
}

var only21 = &smpb.SemVer{Major: 2, Minor: 1}

func TestBridgeCommandGolden(t *testing.T) {
	// Why: a 2.1-only service reads output_paths alone; every 2.0 output must
	// be there, sorted and deduplicated, and the rest of the Command unchanged.
	in := parse(t, `arguments: "sh" arguments: "-c" arguments: "true"
		output_files: "out/b.txt" output_files: "a/link"
		output_directories: "out" output_directories: "gen"
		environment_variables { name: "PATH" value: "/bin" }
		working_directory: "w"`, &repb.Command{})
	want := parse(t, `arguments: "sh" arguments: "-c" arguments: "true"
		output_files: "out/b.txt" output_files: "a/link"
		output_directories: "out" output_directories: "gen"
		output_paths: "a/link" output_paths: "gen" output_paths: "out" output_paths: "out/b.txt"
		environment_variables { name: "PATH" value: "/bin" }
		working_directory: "w"`, &repb.Command{})
	got, err := bridgeCommand(in, only21)
	if err != nil {
		t.Fatal(err)
	}
	wantGolden(t, got, want)
	if len(in.GetOutputPaths()) != 0 {
		t.Error("the client's Command was modified")
	}
	if !speaks20(in) || speaks20(got) || speaks20(&repb.Command{}) {
		t.Error("speaks20: want true for the 2.0 Command only")
	}
}

func TestBridgeCommandWholeWorkingDirectory(t *testing.T) {
	// Why: output_directories "" has no output_paths spelling; the client
	// must learn the version gap, not get an action with lost outputs.
	_, err := bridgeCommand(&repb.Command{OutputDirectories: []string{""}}, only21)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("got %v, want FAILED_PRECONDITION", err)
	}
}

func TestBridgeResultGolden(t *testing.T) {
	// Why: a 2.0 client reads symlinks only from output_file_symlinks and
	// output_directory_symlinks; output_symlinks is 2.1-only.
	cmd := &repb.Command{OutputFiles: []string{"a/link", "out.txt"}, OutputDirectories: []string{"gen", "dlink"}}
	res := parse(t, `output_files { path: "out.txt" digest { hash: "aa" size_bytes: 1 } is_executable: true }
		output_directories { path: "gen" tree_digest { hash: "bb" size_bytes: 2 } }
		output_symlinks { path: "a/link" target: "../out.txt" }
		output_symlinks { path: "dlink" target: "gen" }
		exit_code: 0 stdout_raw: "hi"`, &repb.ActionResult{})
	want := parse(t, `output_files { path: "out.txt" digest { hash: "aa" size_bytes: 1 } is_executable: true }
		output_directories { path: "gen" tree_digest { hash: "bb" size_bytes: 2 } }
		output_file_symlinks { path: "a/link" target: "../out.txt" }
		output_directory_symlinks { path: "dlink" target: "gen" }
		exit_code: 0 stdout_raw: "hi"`, &repb.ActionResult{})
	got, err := bridgeResult(cmd, res)
	if err != nil {
		t.Fatal(err)
	}
	wantGolden(t, got, want)

	// A service that fills the deprecated fields too (as castd does) gives
	// the same answer, without duplicates.
	res.OutputFileSymlinks = []*repb.OutputSymlink{{Path: "a/link", Target: "../out.txt"}}
	res.OutputDirectorySymlinks = []*repb.OutputSymlink{{Path: "dlink", Target: "gen"}}
	got, err = bridgeResult(cmd, res)
	if err != nil {
		t.Fatal(err)
	}
	wantGolden(t, got, want)
}

func TestBridgeResultWrongKind(t *testing.T) {
	// Why: REAPI 2.0 says a file output that is a directory (and the other
	// way round) is FAILED_PRECONDITION; output_paths cannot tell.
	cmd := &repb.Command{OutputFiles: []string{"f"}, OutputDirectories: []string{"d"}}
	for _, res := range []*repb.ActionResult{
		{OutputDirectories: []*repb.OutputDirectory{{Path: "f"}}},
		{OutputFiles: []*repb.OutputFile{{Path: "d"}}},
	} {
		if _, err := bridgeResult(cmd, res); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%v: got %v, want FAILED_PRECONDITION", res, err)
		}
	}
}

func TestAcceptsOnly21(t *testing.T) {
	for _, tc := range []struct {
		low  *smpb.SemVer
		want bool
	}{{nil, false}, {&smpb.SemVer{Major: 2}, false}, {only21, true}, {&smpb.SemVer{Major: 2, Minor: 3}, true}, {&smpb.SemVer{Major: 3}, true}} {
		if got := acceptsOnly21(&repb.ServerCapabilities{LowApiVersion: tc.low}); got != tc.want {
			t.Errorf("low %v: got %v, want %v", tc.low, got, tc.want)
		}
	}
}

func TestTooNew(t *testing.T) {
	// Why: a 2.0-only service ignores output_paths and would return no
	// outputs; the client must hear the version gap instead.
	v20 := &repb.ServerCapabilities{HighApiVersion: &smpb.SemVer{Major: 2}}
	paths := &repb.Command{OutputPaths: []string{"o"}}
	if err := tooNew(paths, v20); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("output_paths to a 2.0 service: got %v, want FAILED_PRECONDITION", err)
	}
	for name, tc := range map[string]struct {
		cmd  *repb.Command
		caps *repb.ServerCapabilities
	}{
		"2.0 Command to a 2.0 service":     {&repb.Command{OutputFiles: []string{"o"}}, v20},
		"both dialects to a 2.0 service":   {&repb.Command{OutputPaths: []string{"o"}, OutputFiles: []string{"o"}}, v20},
		"output_paths to a 2.1 service":    {paths, &repb.ServerCapabilities{HighApiVersion: only21}},
		"output_paths to a silent service": {paths, &repb.ServerCapabilities{}},
	} {
		if err := tooNew(tc.cmd, tc.caps); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
