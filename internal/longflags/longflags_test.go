package longflags_test

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"

	"github.com/castd/castd/internal/longflags"
)

func TestUnknown(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("bind", "", "")
	fs.Bool("verbose", false, "")
	fs.Lookup("verbose").NoOptDefVal = "true"
	for _, tc := range []struct {
		name string
		args []string
		also []string
		want []string
	}{
		{"known, both value forms", []string{"--bind=unix:/s", "--bind", "unix:/t", "--verbose", "dir"}, nil, nil},
		{"a value that looks like a flag is the value", []string{"--bind", "--nope"}, nil, nil},
		{"unknown long and short, all named", []string{"--frob=1", "-x", "--bind", "b", "--nope"}, nil, []string{"--frob", "-x", "--nope"}},
		{"a short form accepted as given", []string{"-h"}, []string{"-h"}, nil},
		{"short form of a known flag", []string{"-b", "v"}, nil, []string{"-b"}},
		{"after --", []string{"--", "--frob"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := longflags.Unknown(fs, tc.args, tc.also...); !slices.Equal(got, tc.want) {
				t.Errorf("Unknown(%q) = %q, want %q", tc.args, got, tc.want)
			}
		})
	}
	if got := longflags.Names(fs); !slices.Equal(got, []string{"--bind", "--verbose"}) {
		t.Errorf("Names = %q", got)
	}
}
