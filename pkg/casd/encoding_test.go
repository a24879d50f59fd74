package casd_test

import (
	"encoding/hex"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/castd/castd/pkg/digest"
)

// pythonDirectory is a Directory with every field BuildStream's trees use,
// as Python's protobuf (4.21.12, Debian 12's python3-protobuf, which
// BuildStream 2.8 runs on here) serialises it with SerializeToString. It
// was produced by setting the fields in reverse field order, so it also
// shows Python writes them in field-number order:
//
//	d = remote_execution_pb2.Directory()
//	d.node_properties.unix_mode.value = 0o755
//	d.node_properties.mtime.seconds = 1600000000; d.node_properties.mtime.nanos = 5
//	d.node_properties.properties.add(name="k", value="v")
//	s = d.symlinks.add(); s.node_properties.mtime.seconds = 7; s.target = "t"; s.name = "l"
//	dn = d.directories.add(); dn.digest.size_bytes = 3; dn.digest.hash = "ab"*32; dn.name = "sub"
//	f = d.files.add(); f.node_properties.mtime.seconds = 1; f.is_executable = True
//	f.digest.size_bytes = 4; f.digest.hash = "cd"*32; f.name = "f"
//	f2 = d.files.add(name="g"); f2.digest.hash = "ef"*32; f2.digest.size_bytes = 0
//	d.SerializeToString().hex()
const pythonDirectory = "0a510a016612440a40" + "6364" + "6364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364" + "100420013204120208010a470a016712420a40" +
	"65666566656665666566656665666566656665666566656665666566656665666566656665666566656665666566656665666566656665666566656665666566" +
	"124b0a0373756212440a40" + "61626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162" +
	"10031a0c0a016c1201742204120208072a170a060a016b12017612080880a0f8fa0510051a0308ed03"

// goDirectory is the same Directory built in Go, fields set in reverse
// order too.
func goDirectory() *repb.Directory {
	d := &repb.Directory{}
	d.NodeProperties = &repb.NodeProperties{UnixMode: wrapperspb.UInt32(0o755), Mtime: &timestamppb.Timestamp{Seconds: 1600000000, Nanos: 5}}
	d.NodeProperties.Properties = []*repb.NodeProperty{{Value: "v", Name: "k"}}
	d.Symlinks = []*repb.SymlinkNode{{NodeProperties: &repb.NodeProperties{Mtime: &timestamppb.Timestamp{Seconds: 7}}, Target: "t", Name: "l"}}
	d.Directories = []*repb.DirectoryNode{{Digest: &repb.Digest{SizeBytes: 3, Hash: strings.Repeat("ab", 32)}, Name: "sub"}}
	d.Files = []*repb.FileNode{
		{NodeProperties: &repb.NodeProperties{Mtime: &timestamppb.Timestamp{Seconds: 1}}, IsExecutable: true, Digest: &repb.Digest{SizeBytes: 4, Hash: strings.Repeat("cd", 32)}, Name: "f"},
		{Name: "g", Digest: &repb.Digest{Hash: strings.Repeat("ef", 32)}},
	}
	return d
}

func TestDirectoryEncodesAsPythonProtobuf(t *testing.T) {
	// BuildStream parses a Tree castd stored, re-serialises tree.root with
	// Python's protobuf and opens the blob named by the digest of those
	// bytes: castd's encoding (digest.OfMessage, which every Directory and
	// Tree castd stores goes through) must give the same bytes.
	want, err := hex.DecodeString(pythonDirectory)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := digest.OfMessage(goDirectory())
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != pythonDirectory {
		t.Fatalf("Go encodes\n%x\nPython encodes\n%x", got, want)
	}
	// And the other way: a Directory Python wrote, parsed and re-encoded
	// by castd, keeps its bytes (so its digest).
	parsed := &repb.Directory{}
	if err := proto.Unmarshal(want, parsed); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := digest.OfMessage(parsed); string(again) != string(want) {
		t.Fatalf("re-encoding Python's bytes changed them:\n%x", again)
	}
}
