package policy

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a configuration source. File is the file
// name as given to the loader, or a description of the source for values
// that came from the environment ("$CASTD_LOG_LEVEL") or a flag
// ("--log-level"); Line and Col are 1-based and zero when unknown. Key is the
// key path, e.g. "artifacts.servers[0].url".
type Error struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"column"`
	Key  string `json:"key"`
	Msg  string `json:"message"`
}

// Error formats the error as "file:line:col: key: message".
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found while loading configuration, in source
// order. Loaders return it (as an error) so that callers can list each
// problem; use errors.As to get at the individual entries.
type Errors []Error

// Error joins the individual errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sorted returns the errors ordered by file, line and column, keeping the
// detection order of errors at the same position.
func (es Errors) sorted() Errors {
	out := append(Errors(nil), es...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return out
}

// asError returns nil for an empty list, so that a nil *Errors never hides
// inside a non-nil error interface.
func (es Errors) asError() error {
	if len(es) == 0 {
		return nil
	}
	return es.sorted()
}
