// Package longflags checks command lines of programs castd stands in for
// (buildbox-casd, buildbox-run), which take long flags only: it finds
// every argument that is not one of a pflag.FlagSet's flags, so that one
// error can name them all instead of pflag's first. It parses nothing
// itself.
package longflags

import (
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// Unknown returns every argument of args that looks like a flag fs does
// not declare as a long flag, in order; arguments in also are accepted as
// they are (a short form such as "-h"). A flag's value given as the next
// argument is skipped; "--" ends the flags.
func Unknown(fs *pflag.FlagSet, args []string, also ...string) []string {
	var unknown []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" || slices.Contains(also, a) {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		f := fs.Lookup(name)
		if f == nil || !strings.HasPrefix(a, "--") {
			flag, _, _ := strings.Cut(a, "=")
			unknown = append(unknown, flag)
			continue
		}
		if !hasValue && f.NoOptDefVal == "" {
			i++ // its value is the next argument
		}
	}
	return unknown
}

// Names lists fs's flags as --name, in declaration order.
func Names(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, "--"+f.Name) })
	return names
}
