package nodeprops_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/castd/castd/internal/nodeprops"
)

func TestParse(t *testing.T) {
	// Why: exactly the properties named are captured; names castd does not
	// know are ignored, and none named means none captured.
	tests := []struct {
		names []string
		want  nodeprops.Set
	}{
		{nil, nodeprops.Set{}},
		{[]string{"mtime"}, nodeprops.Set{Mtime: true}},
		{[]string{"unix_mode"}, nodeprops.Set{UnixMode: true}},
		{[]string{"color", "mtime", "unix_mode"}, nodeprops.Set{Mtime: true, UnixMode: true}},
	}
	for _, tt := range tests {
		if got := nodeprops.Parse(tt.names); got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.names, got, tt.want)
		}
	}
	if got := nodeprops.Parse(nodeprops.Supported()); got != (nodeprops.Set{Mtime: true, UnixMode: true}) {
		t.Errorf("Parse(Supported()) = %+v, want both", got)
	}
	if !nodeprops.Parse([]string{"color"}).Empty() {
		t.Error("a Set of unknown names is not empty")
	}
}

func TestOfCapturesWhatIsAsked(t *testing.T) {
	// Why: clients restore what they asked for; an unasked property would
	// change the digests of Trees and results that ask for none.
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	if err := os.Chmod(p, 0o2640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	mode := nodeprops.Mode(fi) // setgid is dropped when the group is not ours
	if mode&0o777 != 0o640 {
		t.Fatalf("Mode = %o, want 640 in the permission bits", mode)
	}
	tests := []struct {
		set  nodeprops.Set
		want *repb.NodeProperties
	}{
		{nodeprops.Set{}, nil},
		{nodeprops.Set{Mtime: true}, &repb.NodeProperties{Mtime: timestamppb.New(mtime)}},
		{nodeprops.Set{UnixMode: true}, &repb.NodeProperties{UnixMode: wrapperspb.UInt32(mode)}},
		{nodeprops.Set{Mtime: true, UnixMode: true, ModeMask: 0o040}, &repb.NodeProperties{Mtime: timestamppb.New(mtime), UnixMode: wrapperspb.UInt32(mode &^ 0o040)}},
	}
	for _, tt := range tests {
		if got := tt.set.Of(fi); !proto.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("%+v.Of = %v, want %v", tt.set, got, tt.want)
		}
	}
}

func TestApply(t *testing.T) {
	// Why: staged inputs carry the mode and mtime the client sent.
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2009, 2, 13, 23, 31, 30, 5, time.UTC)
	// Bits above the permission bits (a client's st_mode) are ignored.
	np := &repb.NodeProperties{Mtime: timestamppb.New(mtime), UnixMode: wrapperspb.UInt32(0o100751)}
	if err := nodeprops.Apply(p, np); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o751 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("mode %v, mtime %v; want 0751 and %v", fi.Mode(), fi.ModTime(), mtime)
	}
	// Only what is set changes.
	if err := nodeprops.Apply(p, &repb.NodeProperties{UnixMode: wrapperspb.UInt32(0o600)}); err != nil {
		t.Fatal(err)
	}
	if err := nodeprops.Apply(p, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("mode %v, mtime %v (%v); want 0600 and %v kept", fi.Mode(), fi.ModTime(), err, mtime)
	}
	if err := nodeprops.Apply(filepath.Join(t.TempDir(), "missing"), np); !os.IsNotExist(err) {
		t.Errorf("Apply on a missing file = %v, want not-exist", err)
	}
}
