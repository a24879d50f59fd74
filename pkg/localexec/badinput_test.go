//lint:file-ignore SA1019 the REAPI 2.0 output fields are deprecated but Debian's Bazel 4.2.3 still uses them

package localexec_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
)

var (
	neverStored    = digest.OfBytes([]byte("a file blob nobody uploaded"))
	neverStoredDir = digest.OfBytes([]byte("a directory blob nobody uploaded"))
)

func TestRunRejectsBadInput(t *testing.T) {
	ok := shell("true")
	tests := []struct {
		name    string
		why     string
		action  func(t *testing.T, f *fixture) *repb.Action
		code    codes.Code
		field   string   // must appear in the message
		missing []string // PreconditionFailure subjects, for FAILED_PRECONDITION
	}{{
		name:   "absolute output path",
		why:    "outputs must stay inside the working directory",
		action: cmdAction(outputs(shell("true"), "ok", "/etc/passwd")),
		code:   codes.InvalidArgument, field: "command.output_paths[1]",
	}, {
		name:   "output file escaping with dot-dot",
		why:    "a .. component could make castd read files outside the stage",
		action: cmdAction(&repb.Command{Arguments: []string{"true"}, OutputFiles: []string{"../x"}}),
		code:   codes.InvalidArgument, field: "command.output_files[0]",
	}, {
		name:   "output directory with dot-dot inside",
		why:    "any .. component is rejected, even one that lexically stays inside",
		action: cmdAction(&repb.Command{Arguments: []string{"true"}, OutputDirectories: []string{"a/../../b"}}),
		code:   codes.InvalidArgument, field: "command.output_directories[0]",
	}, {
		name:   "working directory escaping the root",
		why:    "the command must run inside the staged input root",
		action: cmdAction(withWD(shell("true"), "../up")),
		code:   codes.InvalidArgument, field: "command.working_directory",
	}, {
		name:   "empty argument list",
		why:    "there is nothing to run",
		action: cmdAction(&repb.Command{}),
		code:   codes.InvalidArgument, field: "command.arguments",
	}, {
		name:   "command not found",
		why:    "an unresolvable arguments[0] is the client's error, reported as such",
		action: cmdAction(withEnv(&repb.Command{Arguments: []string{"no-such-tool-castd"}}, "PATH=/nonexistent")),
		code:   codes.InvalidArgument, field: "command.arguments[0]",
	}, {
		name: "missing command blob",
		why:  "the client must upload the Command; REAPI says so with a MISSING violation",
		action: func(t *testing.T, f *fixture) *repb.Action {
			return &repb.Action{CommandDigest: neverStored.Proto(), InputRootDigest: digest.OfBytes(nil).Proto()}
		},
		code: codes.FailedPrecondition, missing: []string{"blobs/" + neverStored.String()},
	}, {
		name: "missing input blobs",
		why:  "every missing file and Directory blob is listed in one answer, so one re-upload fixes it",
		action: func(t *testing.T, f *fixture) *repb.Action {
			return rootAction(t, f, &repb.Directory{
				Files:       []*repb.FileNode{{Name: "gone", Digest: neverStored.Proto()}},
				Directories: []*repb.DirectoryNode{{Name: "sub", Digest: neverStoredDir.Proto()}},
			})
		},
		code: codes.FailedPrecondition, missing: []string{"blobs/" + neverStored.String(), "blobs/" + neverStoredDir.String()},
	}, {
		name:   "input symlink escaping with dot-dot",
		why:    "a symlink out of the input root would let the action see undeclared inputs",
		action: treeAction(map[string]node{"a/link": {link: "../../etc/passwd"}}, ok),
		code:   codes.InvalidArgument, field: "symlinks[0]",
	}, {
		name:   "absolute input symlink",
		why:    "absolute targets always point outside the staged root",
		action: treeAction(map[string]node{"link": {link: "/etc/passwd"}}, ok),
		code:   codes.InvalidArgument, field: "symlinks[0]",
	}, {
		name: "invalid command digest",
		why:  "digests are validated at the edge",
		action: func(t *testing.T, f *fixture) *repb.Action {
			return &repb.Action{CommandDigest: &repb.Digest{Hash: "xyz", SizeBytes: 3}, InputRootDigest: digest.OfBytes(nil).Proto()}
		},
		code: codes.InvalidArgument, field: "action.command_digest",
	}, {
		name: "invalid input root digest",
		why:  "a missing input root digest is malformed, not missing",
		action: func(t *testing.T, f *fixture) *repb.Action {
			cd, err := localexec.PutMessage(context.Background(), f.cas, ok)
			if err != nil {
				t.Fatal(err)
			}
			return &repb.Action{CommandDigest: cd.Proto()}
		},
		code: codes.InvalidArgument, field: "action.input_root_digest",
	}, {
		name: "invalid file digest in the input tree",
		why:  "Directory messages come from the client and are validated like requests",
		action: func(t *testing.T, f *fixture) *repb.Action {
			return rootAction(t, f, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: &repb.Digest{Hash: "BAD"}}}})
		},
		code: codes.InvalidArgument, field: "files[0].digest",
	}, {
		name: "file name with a slash",
		why:  "a name must be one path component or staging could write anywhere",
		action: func(t *testing.T, f *fixture) *repb.Action {
			return rootAction(t, f, &repb.Directory{Files: []*repb.FileNode{{Name: "../f", Digest: digest.OfBytes(nil).Proto()}}})
		},
		code: codes.InvalidArgument, field: "files[0].name",
	}, {
		name: "negative timeout",
		why:  "a negative duration is malformed",
		action: func(t *testing.T, f *fixture) *repb.Action {
			a := f.action(t, nil, ok, 0)
			a.Timeout = durationpb.New(-time.Second)
			return a
		},
		code: codes.InvalidArgument, field: "action.timeout",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newFixture(t, localexec.Options{})
			res, err := f.runner.Run(context.Background(), tc.action(t, f))
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.field) || res != nil {
				t.Fatalf("Run = %v, %v; want %v naming %q and no result", res, err, tc.code, tc.field)
			}
			sort.Strings(tc.missing)
			if got := missingSubjects(st); strings.Join(got, " ") != strings.Join(tc.missing, " ") {
				t.Errorf("missing blobs reported %v, want %v", got, tc.missing)
			}
			f.assertWorkDirEmpty(t)
		})
	}
}

// cmdAction returns an action running cmd over an empty input root.
func cmdAction(cmd *repb.Command) func(t *testing.T, f *fixture) *repb.Action {
	return treeAction(nil, cmd)
}

func treeAction(inputs map[string]node, cmd *repb.Command) func(t *testing.T, f *fixture) *repb.Action {
	return func(t *testing.T, f *fixture) *repb.Action { return f.action(t, inputs, cmd, 0) }
}

// rootAction stores root as the input root of an action running true.
func rootAction(t *testing.T, f *fixture, root *repb.Directory) *repb.Action {
	rd, err := localexec.PutMessage(context.Background(), f.cas, root)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := localexec.UploadAction(context.Background(), f.cas, shell("true"), rd, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// missingSubjects returns the sorted subjects of MISSING violations in st.
func missingSubjects(st *status.Status) []string {
	var subjects []string
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				if v.GetType() == "MISSING" {
					subjects = append(subjects, v.GetSubject())
				}
			}
		}
	}
	sort.Strings(subjects)
	return subjects
}
