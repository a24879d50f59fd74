package policy

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// pos is where a value came from: a file position, or an environment
// variable or flag (File holds its name, Line is zero).
type pos struct {
	File      string
	Line, Col int
	// Raw is the scalar's source text, kept so that "0600" can be read as
	// octal even though YAML already made a number of it.
	Raw string
}

// posIndex maps key paths ("artifacts.servers[0].url") to the position of
// their value and of their key. koanf drops positions, so they are taken
// from a yaml.Node tree of the same text.
type posIndex struct {
	vals map[string]pos
	keys map[string]pos
}

func newPosIndex() posIndex {
	return posIndex{vals: map[string]pos{}, keys: map[string]pos{}}
}

// value returns the position of path's value, falling back to the closest
// enclosing path that has one, then to def.
func (x posIndex) value(path string, def pos) pos {
	return lookup(x.vals, path, def)
}

// key returns the position of path's key, else of its value.
func (x posIndex) key(path string, def pos) pos {
	if p, ok := x.keys[path]; ok {
		return p
	}
	return x.value(path, def)
}

func lookup(m map[string]pos, path string, def pos) pos {
	for {
		if p, ok := m[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return def
		}
		path = path[:i]
	}
}

// override marks path (and everything under it) as coming from p.
func (x posIndex) override(path string, p pos) {
	for _, m := range []map[string]pos{x.vals, x.keys} {
		for k := range m {
			if k == path || strings.HasPrefix(k, path+".") || strings.HasPrefix(k, path+"[") {
				delete(m, k)
			}
		}
	}
	x.vals[path] = p
}

func childPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// parseYAML parses data into a node tree and indexes the positions of its
// values. It returns the document's root (nil for an empty document) and
// any syntax errors as Errors.
func parseYAML(file string, data []byte) (root *yaml.Node, idx posIndex, errs Errors) {
	idx = newPosIndex()
	defer func() {
		// The parser is third-party code fed arbitrary bytes; a bug in it
		// must surface as a config error, never take down the daemon.
		if r := recover(); r != nil {
			root, errs = nil, Errors{{File: file, Msg: fmt.Sprintf("cannot parse YAML: %v", r)}}
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, idx, yamlErrors(file, data, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, idx, nil
	}
	root = doc.Content[0]
	walkPositions(file, root, "", idx, 0)
	return root, idx, nil
}

// walkPositions records positions under path. Aliases are not followed: a
// value reached through one reports the alias's position, which also keeps
// the walk linear in the size of the text.
func walkPositions(file string, n *yaml.Node, path string, idx posIndex, depth int) {
	if depth > 200 {
		return
	}
	if path != "" {
		idx.vals[path] = pos{File: file, Line: n.Line, Col: n.Column, Raw: n.Value}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			p := childPath(path, k.Value)
			idx.keys[p] = pos{File: file, Line: k.Line, Col: k.Column}
			walkPositions(file, v, p, idx, depth+1)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			walkPositions(file, v, indexPath(path, i), idx, depth+1)
		}
	}
}

// kindName describes a YAML node kind for "found a mapping" messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a scalar"
}
