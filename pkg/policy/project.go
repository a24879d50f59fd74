package policy

import (
	"fmt"
	"os"
	"path/filepath"

	yamlv3 "go.yaml.in/yaml/v3"
)

// LoadProject reads and validates dir/project.conf.
func LoadProject(dir string) (*Project, error) {
	file := filepath.Join(dir, "project.conf")
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, Errors{{File: file, Msg: fmt.Sprintf("cannot read project config: %v", unwrapPathError(err))}}
	}
	return ParseProject(dir, file, data)
}

// ParseProject validates data, the text of a project.conf named filename
// in errors, for the project in directory dir. Only the remote-related keys
// are read (name, artifacts, source-caches) and validated strictly; the
// rest of a BuildStream project.conf is ignored. A remote-execution block
// is an error: it belongs in the user config. Relative auth paths resolve
// against dir; there is no ~ or $VAR expansion in project files.
func ParseProject(dir, filename string, data []byte) (*Project, error) {
	p := &Project{Dir: dir}
	d := &decoder{file: filename, baseDir: dir, project: true}
	root, idx, errs := parseYAML(filename, data)
	d.idx, d.errs = idx, errs
	if errs == nil && root != nil {
		if root.Kind != yamlv3.MappingNode {
			d.errs = append(d.errs, Error{File: filename, Line: root.Line, Col: root.Column, Msg: "expected a mapping at the top level, found " + kindName(root)})
		} else {
			var m map[string]any
			if err := root.Decode(&m); err != nil {
				d.errs = append(d.errs, yamlErrors(filename, data, err)...)
			} else {
				d.projectConf(m, p)
			}
		}
	}
	if err := d.errs.asError(); err != nil {
		return nil, err
	}
	return p, nil
}

func (d *decoder) projectConf(m map[string]any, p *Project) {
	if x, ok := m["name"]; ok {
		if s, ok := d.str("name", x); ok && s == "" {
			d.errorf("name", "expected a project name, found an empty string")
		} else {
			p.Name = s
		}
	}
	const listOfServers = "a list of servers"
	if x, ok := m["artifacts"]; ok {
		p.Artifacts = d.servers("artifacts", listOfServers, x)
	}
	if x, ok := m["source-caches"]; ok {
		p.SourceCaches = d.servers("source-caches", listOfServers, x)
	}
	if _, ok := m["remote-execution"]; ok {
		d.keyErrorf("remote-execution", "not allowed in project.conf; remote execution belongs in the user configuration (castd.yaml)")
	}
}
