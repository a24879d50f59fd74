//lint:file-ignore SA1019 the REAPI 2.0 output fields are deprecated but Debian's Bazel 4.2.3 still uses them

package localexec_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
)

// propsScript writes an output file out/f and an output directory gen with
// known modes and mtimes (out/f's with nanoseconds).
const propsScript = `mkdir -p gen/sub && printf x > out/f && printf y > gen/top && printf z > gen/sub/g &&
chmod 0640 out/f gen/top gen/sub/g && chmod 0750 gen gen/sub &&
touch -d @1234567890.5 out/f && touch -d @1234567890 gen/top gen/sub/g gen/sub gen`

func TestOutputNodeProperties(t *testing.T) {
	// Why: REAPI 2.1 clients list in output_node_properties what they
	// restore on outputs (BuildStream asks for mtime); clients that ask for
	// nothing must get results, and Tree digests, exactly as before.
	props := func(mode uint32, nanos int32) *repb.NodeProperties {
		return &repb.NodeProperties{Mtime: &timestamppb.Timestamp{Seconds: 1234567890, Nanos: nanos}, UnixMode: wrapperspb.UInt32(mode)}
	}
	all := map[string]*repb.NodeProperties{
		"out/f":     props(0o640, 5e8),
		"gen":       props(0o750, 0),
		"gen/top":   props(0o640, 0),
		"gen/sub":   props(0o750, 0),
		"gen/sub/g": props(0o640, 0),
	}
	v21 := func(asked ...string) *repb.Command {
		c := outputs(shell(propsScript), "out/f", "gen")
		c.OutputNodeProperties = asked
		return c
	}
	v20 := shell(propsScript)
	v20.OutputFiles, v20.OutputDirectories = []string{"out/f"}, []string{"gen"}
	v20.OutputNodeProperties = []string{"mtime", "unix_mode"}
	tests := []struct {
		name            string
		cmd             *repb.Command
		mtime, unixMode bool
	}{
		{"mtime and unix_mode", v21("mtime", "unix_mode"), true, true},
		{"mtime only", v21("mtime"), true, false},
		{"unix_mode only", v21("unix_mode"), false, true},
		{"none asked, none given", v21(), false, false},
		{"REAPI 2.0 output fields", v20, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, localexec.Options{})
			res, err := f.runner.Run(context.Background(), f.action(t, nil, tc.cmd, 0))
			if err != nil || res.GetExitCode() != 0 {
				t.Fatalf("Run: %v, exit %d, stderr %q", err, res.GetExitCode(), f.blob(t, res.GetStderrDigest()))
			}
			got := outputNodeProperties(t, f, res)
			if len(got) != len(all) {
				t.Fatalf("outputs found: %v, want %d of them", got, len(all))
			}
			for p, full := range all {
				var want *repb.NodeProperties
				if tc.mtime || tc.unixMode {
					want = &repb.NodeProperties{}
					if tc.mtime {
						want.Mtime = full.Mtime
					}
					if tc.unixMode {
						want.UnixMode = full.UnixMode
					}
				}
				if g, ok := got[p]; !ok || (g == nil) != (want == nil) || !proto.Equal(g, want) {
					t.Errorf("%s: node_properties %v, want %v", p, g, want)
				}
			}
		})
	}
}

// outputNodeProperties returns the node_properties of every OutputFile and
// of every Directory and FileNode in the output directories' Trees, by path.
func outputNodeProperties(t *testing.T, f *fixture, res *repb.ActionResult) map[string]*repb.NodeProperties {
	t.Helper()
	got := map[string]*repb.NodeProperties{}
	for _, o := range res.GetOutputFiles() {
		got[o.GetPath()] = o.GetNodeProperties()
	}
	for _, od := range res.GetOutputDirectories() {
		tree := &repb.Tree{}
		f.message(t, od.GetTreeDigest(), tree)
		children := map[digest.Digest]*repb.Directory{}
		for _, c := range tree.GetChildren() {
			d, _, err := digest.OfMessage(c)
			if err != nil {
				t.Fatal(err)
			}
			children[d] = c
		}
		var walk func(p string, dir *repb.Directory)
		walk = func(p string, dir *repb.Directory) {
			got[p] = dir.GetNodeProperties()
			for _, fn := range dir.GetFiles() {
				got[p+"/"+fn.GetName()] = fn.GetNodeProperties()
			}
			for _, dn := range dir.GetDirectories() {
				d, err := digest.FromProto(dn.GetDigest())
				if err != nil || children[d] == nil {
					t.Fatalf("%s/%s: not in the tree", p, dn.GetName())
				}
				walk(p+"/"+dn.GetName(), children[d])
			}
		}
		walk(od.GetPath(), tree.GetRoot())
	}
	return got
}

// inputWithProperties stores an input root of the given files, all holding
// "data" (digests filled in), and returns its digest.
func inputWithProperties(t *testing.T, f *fixture, files ...*repb.FileNode) digest.Digest {
	t.Helper()
	ctx := context.Background()
	data := digest.OfBytes([]byte("data"))
	if err := f.cas.Put(ctx, data, bytes.NewReader([]byte("data"))); err != nil {
		t.Fatal(err)
	}
	for _, fn := range files {
		fn.Digest = data.Proto()
	}
	root, err := localexec.PutMessage(ctx, f.cas, &repb.Directory{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestInputNodeProperties(t *testing.T) {
	// Why: a client that sends an input's mtime or mode (BuildStream
	// staging sources whose timestamps matter, make-based builds) must see
	// them on the staged file; without unix_mode the executable bit still
	// decides the mode.
	f := newFixture(t, localexec.Options{})
	mtime := &timestamppb.Timestamp{Seconds: 1234567890}
	root := inputWithProperties(t, f,
		&repb.FileNode{Name: "a", NodeProperties: &repb.NodeProperties{Mtime: mtime, UnixMode: wrapperspb.UInt32(0o640)}},
		&repb.FileNode{Name: "b", IsExecutable: true, NodeProperties: &repb.NodeProperties{Mtime: &timestamppb.Timestamp{Seconds: 1000000000}}},
		&repb.FileNode{Name: "c", NodeProperties: &repb.NodeProperties{UnixMode: wrapperspb.UInt32(0o600)}},
		&repb.FileNode{Name: "d", IsExecutable: true, NodeProperties: &repb.NodeProperties{UnixMode: wrapperspb.UInt32(0o640)}},
		&repb.FileNode{Name: "e"},
		&repb.FileNode{Name: "x", IsExecutable: true},
	)
	cmd := &repb.Command{Arguments: []string{"/usr/bin/stat", "-c", "%n %a %Y", "a", "b", "c", "d", "e", "x"}}
	a, _, err := localexec.UploadAction(context.Background(), f.cas, cmd, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.runner.Run(context.Background(), a)
	if err != nil || res.GetExitCode() != 0 {
		t.Fatalf("Run: %v, exit %d, stderr %q", err, res.GetExitCode(), f.blob(t, res.GetStderrDigest()))
	}
	lines := strings.Split(strings.TrimSpace(string(f.blob(t, res.GetStdoutDigest()))), "\n")
	want := []string{"a 640 1234567890", "b 755 1000000000", "c 600 ", "d 640 ", "e 644 ", "x 755 "}
	if len(lines) != len(want) {
		t.Fatalf("stat printed %q", lines)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) || (strings.HasSuffix(w, " ") && strings.HasSuffix(lines[i], " 1234567890")) {
			t.Errorf("staged %q, want %q", lines[i], w)
		}
	}
	f.assertWorkDirEmpty(t)
}

func TestInputNodePropertiesBadMtime(t *testing.T) {
	// Why: a timestamp that is not one is the client's error, named.
	f := newFixture(t, localexec.Options{})
	root := inputWithProperties(t, f, &repb.FileNode{Name: "a", NodeProperties: &repb.NodeProperties{Mtime: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}}})
	a, _, err := localexec.UploadAction(context.Background(), f.cas, &repb.Command{Arguments: []string{"/bin/true"}}, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.runner.Run(context.Background(), a)
	if s := status.Convert(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), `"a"`) || !strings.Contains(s.Message(), "mtime") {
		t.Fatalf("Run = %v, want INVALID_ARGUMENT naming a's mtime", err)
	}
	f.assertWorkDirEmpty(t)
}

func TestOutputNodePropertiesUnknownIsInvalid(t *testing.T) {
	// Why: REAPI says a server that does not recognise a property in
	// output_node_properties returns INVALID_ARGUMENT; silently dropping it
	// would leave a client restoring outputs without what it asked for.
	f := newFixture(t, localexec.Options{})
	c := outputs(shell("true"), "out/f")
	c.OutputNodeProperties = []string{"mtime", "color"}
	_, err := f.runner.Run(context.Background(), f.action(t, nil, c, 0))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "command.output_node_properties[1]") || !strings.Contains(err.Error(), `"color"`) {
		t.Fatalf("Run with an unknown node property = %v, want INVALID_ARGUMENT naming command.output_node_properties[1]", err)
	}
}
