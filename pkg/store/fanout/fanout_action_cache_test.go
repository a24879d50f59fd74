package fanout_test

import (
	"context"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// resultWith returns an ActionResult whose one output file holds s.
func resultWith(s string) *repb.ActionResult {
	d, _ := blob(s)
	return &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out", Digest: d.Proto()}}}
}

// treeResult returns an ActionResult with one output directory whose Tree
// (returned as bytes) holds a file with content file.
func treeResult(t *testing.T, file string) (*repb.ActionResult, string) {
	fd, _ := blob(file)
	tree := &repb.Tree{Root: &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: fd.Proto()}}}}
	td, b, err := digest.OfMessage(tree)
	if err != nil {
		t.Fatal(err)
	}
	return &repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "dir", TreeDigest: td.Proto()}}}, string(b)
}

// acSpec is one remote action cache and the blobs of its storage twin.
type acSpec struct {
	name   string
	result *repb.ActionResult // nil: no entry
	down   bool
}

func TestGetActionResult(t *testing.T) {
	action, _ := blob("action")
	dirResult, treeBytes := treeResult(t, "in a tree")
	for _, tc := range []struct {
		name, why string
		local     *repb.ActionResult
		remotes   []acSpec
		blobs     []string // in the one storage remote
		want      *repb.ActionResult
		wantCode  codes.Code
		wantFrom  string // the remote OnRemoteHit names
		wantInMsg []string
		wantAsked []bool // per remote: was it asked
	}{{
		name:      "local hit",
		why:       "a result held locally is served without asking any remote",
		local:     resultWith("output"),
		remotes:   []acSpec{{name: "r1", result: resultWith("other")}},
		want:      resultWith("output"),
		wantAsked: []bool{false},
	}, {
		name:      "remote hit with all blobs present",
		why:       "a complete remote result is served and recorded locally",
		remotes:   []acSpec{{name: "r1", result: resultWith("output")}},
		blobs:     []string{"output"},
		want:      resultWith("output"),
		wantFrom:  "r1",
		wantAsked: []bool{true},
	}, {
		name:      "remote hit with output directory",
		why:       "the Tree is read through the CAS fan-out and its files checked too",
		remotes:   []acSpec{{name: "r1", result: dirResult}},
		blobs:     []string{treeBytes, "in a tree"},
		want:      dirResult,
		wantFrom:  "r1",
		wantAsked: []bool{true},
	}, {
		name:      "remote hit with a missing output blob",
		why:       "a result whose outputs exist nowhere must not be served: the client would fail to fetch them",
		remotes:   []acSpec{{name: "r1", result: resultWith("output")}},
		wantCode:  codes.NotFound,
		wantInMsg: []string{"upstream[1] r1", "incomplete"},
		wantAsked: []bool{true},
	}, {
		name:      "second remote complete",
		why:       "an incomplete result is that remote's miss; the next remote may hold a usable one",
		remotes:   []acSpec{{name: "r1", result: resultWith("gone")}, {name: "r2", result: resultWith("output")}},
		blobs:     []string{"output"},
		want:      resultWith("output"),
		wantFrom:  "r2",
		wantAsked: []bool{true, true},
	}, {
		name:      "first remote down",
		why:       "an unreachable action cache is skipped",
		remotes:   []acSpec{{name: "r1", down: true}, {name: "r2", result: resultWith("output")}},
		blobs:     []string{"output"},
		want:      resultWith("output"),
		wantFrom:  "r2",
		wantAsked: []bool{true, true},
	}, {
		name:      "all remotes down",
		why:       "when no remote could answer, the failure keeps its code (not a miss), naming each remote's failure",
		remotes:   []acSpec{{name: "r1", down: true}, {name: "r2", down: true}},
		wantCode:  codes.Unavailable,
		wantInMsg: []string{"upstream[1] r1", "upstream[2] r2", "Unavailable"},
		wantAsked: []bool{true, true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			local := store.NewMemory()
			if tc.local != nil {
				if err := local.UpdateActionResult(context.Background(), action, tc.local); err != nil {
					t.Fatal(err)
				}
			}
			cas := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "storage", CAS: memoryWith(t, tc.blobs...)}}, fanout.Options{})
			var tiers []fanout.ACTier
			var counted []*countingAC
			for _, s := range tc.remotes {
				var ac store.ActionCache = downAC{}
				if !s.down {
					m := store.NewMemory()
					if s.result != nil {
						if err := m.UpdateActionResult(context.Background(), action, s.result); err != nil {
							t.Fatal(err)
						}
					}
					ac = m
				}
				c := &countingAC{ActionCache: ac}
				counted = append(counted, c)
				tiers = append(tiers, fanout.ACTier{Name: s.name, AC: c, Origin: "project"})
			}
			var from []string
			counters := fanout.NewCounters()
			fac := fanout.NewActionCache(local, tiers, cas, fanout.ACOptions{
				Counters:    counters,
				OnRemoteHit: func(a digest.Digest, _ *repb.ActionResult, tier fanout.ACTier) { from = append(from, tier.Name) },
			})
			got, err := fac.GetActionResult(context.Background(), action)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("GetActionResult: %v, want %v", err, tc.wantCode)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("result %v, want %v", got, tc.want)
			}
			if err != nil {
				t.Logf("error: %v", err)
			}
			for _, s := range tc.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			for i, c := range counted {
				if asked := c.gets.Load() > 0; asked != tc.wantAsked[i] {
					t.Errorf("remote %d asked = %v, want %v", i, asked, tc.wantAsked[i])
				}
			}
			checkRecorded(t, local, action, tc.local, tc.want, tc.wantFrom, from)
			if tc.wantCode == codes.NotFound && counters.Snapshot().Misses != 1 {
				t.Errorf("Misses = %d, want 1", counters.Snapshot().Misses)
			}
		})
	}
}

// checkRecorded checks that a remote hit (and only one) was recorded
// locally and reported with its tier.
func checkRecorded(t *testing.T, local store.ActionCache, action digest.Digest, before, want *repb.ActionResult, wantFrom string, from []string) {
	t.Helper()
	stored, err := local.GetActionResult(context.Background(), action)
	switch {
	case wantFrom != "" && !proto.Equal(stored, want):
		t.Errorf("local holds %v (%v), want the remote hit recorded", stored, err)
	case wantFrom == "" && before == nil && status.Code(err) != codes.NotFound:
		t.Errorf("local holds %v (%v), want nothing recorded", stored, err)
	}
	if wantFrom == "" && len(from) != 0 || wantFrom != "" && (len(from) != 1 || from[0] != wantFrom) {
		t.Errorf("OnRemoteHit from %v, want %q", from, wantFrom)
	}
}

func TestUpdateActionResult(t *testing.T) {
	t.Log("a client's result is written locally, never sent to a remote directly (write-back is the queue's job)")
	action, _ := blob("action")
	local := store.NewMemory()
	remote := &countingAC{ActionCache: store.NewMemory()}
	fac := fanout.NewActionCache(local, []fanout.ACTier{{Name: "r1", AC: remote}}, store.NewMemory(), fanout.ACOptions{})
	if err := fac.UpdateActionResult(context.Background(), action, resultWith("output")); err != nil {
		t.Fatal(err)
	}
	if got, err := local.GetActionResult(context.Background(), action); err != nil || !proto.Equal(got, resultWith("output")) {
		t.Errorf("local holds %v, %v", got, err)
	}
	if remote.updates.Load() != 0 || remote.gets.Load() != 0 {
		t.Errorf("remote called %d/%d times, want never", remote.gets.Load(), remote.updates.Load())
	}
}
