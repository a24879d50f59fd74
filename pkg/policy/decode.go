package policy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/castd/castd/pkg/digest"
)

// decoder turns a generic map (from koanf or yaml) into typed values,
// collecting positioned errors instead of stopping at the first.
type decoder struct {
	file string // display name of the source file
	idx  posIndex
	errs Errors

	// baseDir is where relative paths from the file resolve.
	baseDir string
	// expand enables ~ and $VAR expansion (user config only).
	expand bool
	getenv func(string) string
	home   string
	// project is set while decoding project.conf.
	project bool
	// bstSettings are the BuildStream-only keys met (buildStreamOnly).
	bstSettings []Error
	// own is castd's listeners, which remote urls must not name
	// (checkSelfLoop); empty while decoding project.conf.
	own ownListeners
}

func (d *decoder) filePos() pos { return pos{File: d.file} }

func (d *decoder) errorf(path, format string, args ...any) {
	p := d.idx.value(path, d.filePos())
	d.errs = append(d.errs, Error{File: p.File, Line: p.Line, Col: p.Col, Key: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) keyErrorf(path, format string, args ...any) {
	p := d.idx.key(path, d.filePos())
	d.errs = append(d.errs, Error{File: p.File, Line: p.Line, Col: p.Col, Key: path, Msg: fmt.Sprintf(format, args...)})
}

// fromFile reports whether path's value came from the config file (rather
// than from the environment, a flag or a default).
func (d *decoder) fromFile(path string) bool {
	p := d.idx.value(path, pos{})
	return p.File == d.file && p.Line > 0
}

// kindOf describes a decoded value for "found ..." messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case map[string]any, map[any]any:
		return "a mapping"
	case []any, []string:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64, int32, uint32:
		return "an integer"
	case float64, float32:
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}

// keyedMapping is mapping for a part of the configuration whose keys must
// be among keys: unknown keys are reported (checkKeys), the mapping is
// still used.
func (d *decoder) keyedMapping(path string, v any, keys ...string) (map[string]any, bool) {
	m, ok := d.mapping(path, v)
	if ok {
		d.checkKeys(path, m, keys...)
	}
	return m, ok
}

// mapping returns v as a string-keyed map; nil counts as an empty mapping.
func (d *decoder) mapping(path string, v any) (map[string]any, bool) {
	switch m := v.(type) {
	case nil:
		return map[string]any{}, true
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[fmt.Sprint(k)] = x
		}
		return out, true
	}
	d.errorf(path, "expected a mapping, found %s", kindOf(v))
	return nil, false
}

// list returns v as a slice; nil counts as an empty list.
func (d *decoder) list(path, what string, v any) ([]any, bool) {
	switch l := v.(type) {
	case nil:
		return nil, true
	case []any:
		return l, true
	case []string:
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out, true
	}
	d.errorf(path, "expected %s, found %s", what, kindOf(v))
	return nil, false
}

// checkKeys reports every key of m that is not in allowed, and returns m's
// keys in a stable order.
func (d *decoder) checkKeys(path string, m map[string]any, allowed ...string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			d.keyErrorf(childPath(path, k), "unknown key; expected one of %s", strings.Join(allowed, ", "))
		}
	}
}

func (d *decoder) str(path string, v any) (string, bool) {
	if s, ok := v.(string); ok {
		return s, true
	}
	d.errorf(path, "expected a string, found %s", kindOf(v))
	return "", false
}

func (d *decoder) boolean(path string, v any) (bool, bool) {
	if b, ok := v.(bool); ok {
		return b, true
	}
	d.errorf(path, "expected true or false, found %s", kindOf(v))
	return false, false
}

// integer accepts YAML integers and integral floats within [minimum, max int32].
func (d *decoder) integer(path string, v any, minimum int64) (int64, bool) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt32 {
			n = math.MaxInt64
		} else {
			n = int64(x)
		}
	default:
		d.errorf(path, "expected an integer, found %s", kindOf(v))
		return 0, false
	}
	if n < minimum || n > math.MaxInt32 {
		d.errorf(path, "expected an integer from %d to %d, found %d", minimum, math.MaxInt32, n)
		return 0, false
	}
	return n, true
}

// enum reads a string that must be one of choices.
func (d *decoder) enum(path string, v any, choices ...string) (string, bool) {
	s, ok := d.str(path, v)
	if !ok {
		return "", false
	}
	if !slices.Contains(choices, s) {
		d.errorf(path, "expected one of %s, found %q", strings.Join(choices, ", "), s)
		return "", false
	}
	return s, true
}

// digestFunctions reads a list of digest function names (sha256, blake3,
// …). SHA256 is added when missing: it is REAPI's default, which clients
// that name no function use.
func (d *decoder) digestFunctions(path string, v any) []digest.Function {
	items, ok := d.list(path, "a list of digest functions", v)
	if !ok {
		return nil
	}
	set := digest.SetOf(digest.SHA256)
	for i, it := range items {
		p := fmt.Sprintf("%s[%d]", path, i)
		s, ok := d.str(p, it)
		if !ok {
			continue
		}
		f, ok := digest.ParseFunction(s)
		if !ok {
			d.errorf(p, "unknown digest function %q; expected one of %s", s, digest.AllFunctions)
			continue
		}
		set |= digest.SetOf(f)
	}
	return set.Slice()
}

// path reads a file system path, expanding ~ and environment variables in
// the user config and resolving relative paths against the config file's
// (or project's) directory when the value came from that file.
func (d *decoder) path(path string, v any) (string, bool) {
	s, ok := d.str(path, v)
	if !ok || s == "" {
		return s, ok
	}
	if d.expand {
		s = expandPath(s, d.getenv, d.home)
	}
	if !filepath.IsAbs(s) && d.baseDir != "" && (d.project || d.fromFile(path)) {
		s = filepath.Join(d.baseDir, s)
	}
	return s, true
}

// expandPath expands a leading "~" or "~/" and $VAR / ${VAR}.
func expandPath(s string, getenv func(string) string, home string) string {
	if home != "" && (s == "~" || strings.HasPrefix(s, "~/")) {
		s = home + s[1:]
	}
	return os.Expand(s, getenv)
}

// readableFile checks that a credential file referenced by the config can
// be opened, without reading it (and without blocking on a FIFO).
func (d *decoder) readableFile(path, what, file string) {
	if file == "" {
		return
	}
	fi, err := os.Stat(file)
	if err == nil && !fi.Mode().IsRegular() {
		d.errorf(path, "cannot read %s %q: not a regular file", what, file)
		return
	}
	if err == nil {
		var f *os.File
		if f, err = os.Open(file); err == nil {
			f.Close()
			return
		}
	}
	d.errorf(path, "cannot read %s %q: %v", what, file, unwrapPathError(err))
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
