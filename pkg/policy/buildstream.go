package policy

import "slices"

// BuildStream 2's user configuration has keys that configure BuildStream
// itself (directories, scheduler, logging, per-project build options).
// castd reads a whole buildstream.conf, uses its remote sections and lists
// these in `config check` instead of rejecting them as unknown.
//
// The tables follow the node.validate_keys calls of apache/buildstream
// src/buildstream/_context.py (Context.load) at commit 416bdd04 (the
// BuildStream 2 series); keys castd also understands (artifacts,
// source-caches, remote-execution, projects, cache.quota,
// cache.storage-service) are not repeated here.
var (
	// buildStreamTopKeys are top-level keys of buildstream.conf.
	buildStreamTopKeys = []string{
		"cachedir", "sourcedir", "builddir", "logdir", "workspacedir",
		"scheduler", "build", "fetch", "track", "logging",
	}
	// buildStreamCacheKeys are keys of its `cache` mapping.
	buildStreamCacheKeys = []string{"pull-buildtrees", "cache-buildtrees"}
	// buildStreamProjectKeys are keys of a `projects: NAME:` override.
	buildStreamProjectKeys = []string{"options", "strict", "default-mirror", "mirrors"}
)

// BuildStreamSettingMsg is the message of every Config.BuildStreamSettings entry.
const BuildStreamSettingMsg = "BuildStream setting, not used by castd"

// buildStreamOnly records the keys of m under path that are among keys
// (BuildStream settings castd does not use) and returns m without them,
// for checkKeys to judge the rest. m itself is not modified.
func (d *decoder) buildStreamOnly(path string, m map[string]any, keys []string) map[string]any {
	var rest map[string]any
	for _, k := range sortedKeys(m) {
		if !slices.Contains(keys, k) {
			continue
		}
		if rest == nil {
			rest = make(map[string]any, len(m))
			for k2, v := range m {
				rest[k2] = v
			}
		}
		delete(rest, k)
		p := childPath(path, k)
		at := d.idx.key(p, d.filePos())
		d.bstSettings = append(d.bstSettings, Error{File: at.File, Line: at.Line, Col: at.Col, Key: p, Msg: BuildStreamSettingMsg})
	}
	if rest == nil {
		return m
	}
	return rest
}
