package buildboxrun_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/buildboxrun"
	"github.com/castd/castd/pkg/localexec"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		why     string
		args    []string
		want    buildboxrun.Config
		wantErr []string // substrings of the error
	}{{
		name: "BuildStream's run",
		why:  "every flag _sandboxbuildboxrun.py passes, bind mounts in order",
		args: []string{"--remote=unix:/c/casd.sock", "--action=/t/a", "--action-result=/t/r", "--instance=re",
			"--nested-ac-enable-update", "--no-logs-capture", "--bind-mount=/src:/mnt/src", "--bind-mount=/dev:/dev"},
		want: buildboxrun.Config{Remote: "unix:/c/casd.sock", Action: "/t/a", ActionResult: "/t/r", Instance: "re",
			NestedACEnableUpdate: true, NoLogsCapture: true,
			BindMounts: []localexec.BindMount{{Source: "/src", Target: "/mnt/src"}, {Source: "/dev", Target: "/dev"}}},
	}, {
		name: "capabilities alone",
		why:  "BuildStream probes with --capabilities and nothing else",
		args: []string{"--capabilities"},
		want: buildboxrun.Config{Capabilities: true},
	}, {
		name:    "unknown flags",
		why:     "flags of other buildbox-run versions are named, all of them, not ignored",
		args:    []string{"--remote", "unix:/s", "--use-localcas", "--action=a", "-v", "--action-result=r"},
		wantErr: []string{"--use-localcas", "-v", "--bind-mount"},
	}, {
		name:    "required flags",
		why:     "a run without its files cannot do anything useful",
		args:    []string{"--no-logs-capture"},
		wantErr: []string{"--action, --action-result, --remote required"},
	}, {
		name:    "bad bind mount",
		why:     "SRC:DST is the only form",
		args:    []string{"--remote=unix:/s", "--action=a", "--action-result=r", "--bind-mount=/src"},
		wantErr: []string{"--bind-mount=/src: expected SRC:DST"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			got, err := buildboxrun.Parse(tc.args)
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("Parse error %v, want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Remote != tc.want.Remote || got.Action != tc.want.Action || got.ActionResult != tc.want.ActionResult ||
				got.Instance != tc.want.Instance || got.Capabilities != tc.want.Capabilities || got.NoLogsCapture != tc.want.NoLogsCapture ||
				got.NestedACEnableUpdate != tc.want.NestedACEnableUpdate || !slices.Equal(got.BindMounts, tc.want.BindMounts) {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}
