package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to
// its scanner). For these it reports the 0-based line of where the
// enclosing construct began, one less than the line a person counts.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlErrors turns a yaml.v3 error ("yaml: line 3: ...", or a list of
// unmarshal errors) for data into positioned Errors. yaml.v3 reports the
// line where the construct around the problem began, not the problem, and
// no column; where the problem can be found in the text (a tab in the
// indentation, an unclosed [ or {) the Error points at it instead, and it
// names the key whose line it is on.
func yamlErrors(file string, data []byte, err error) Errors {
	lines := strings.Split(string(data), "\n")
	var out Errors
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "yaml:"))
		if line == "" || line == "unmarshal errors:" {
			continue
		}
		// Without "line N:" yaml.v3 means its 0-based line 0.
		n, problem := 0, line
		if m := yamlLineRE.FindStringSubmatch(line); m != nil {
			n, _ = strconv.Atoi(m[1])
			problem = m[2]
		}
		e := Error{File: file}
		e.Line, e.Col, e.Msg = locateYAMLProblem(lines, n, problem)
		e.Key = keyOfLine(lines, e.Line)
		out = append(out, e)
	}
	if len(out) == 0 {
		out = Errors{{File: file, Msg: "invalid YAML: " + err.Error()}}
	}
	return out
}

// locateYAMLProblem returns the 1-based line and column (0 when unknown)
// and the message for a problem yaml.v3 reported at line n.
func locateYAMLProblem(lines []string, n int, problem string) (line, col int, msg string) {
	msg = "invalid YAML: " + problem
	parser := false
	for _, p := range yamlParserProblems {
		parser = parser || problem == p
	}
	if parser || n == 0 {
		n++
	}
	// At the end of the text the problem is what the last line left open.
	for n > 1 && (n > len(lines) || allBlank(lines[n-1:])) {
		n--
	}
	switch {
	case strings.Contains(problem, "tab character") || problem == "found character that cannot start any token":
		for i := max(n-1, 0); i < len(lines); i++ {
			indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]
			if c := strings.IndexByte(indent, '\t'); c >= 0 {
				return i + 1, c + 1, msg + " (YAML indents with spaces, not tabs)"
			}
		}
	case strings.HasPrefix(problem, "did not find expected"):
		if n >= 1 && n <= len(lines) {
			if c := unclosedBracket(lines[n-1]); c > 0 {
				return n, c, msg + fmt.Sprintf(": the %c here is never closed", lines[n-1][c-1])
			}
		}
	}
	return n, 0, msg
}

// unclosedBracket returns the 1-based column of the first [ or { on line
// that the line does not close, or 0. Quoted text and comments are skipped.
func unclosedBracket(line string) int {
	var open []int
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' '):
			i = len(line)
		case c == '[' || c == '{':
			open = append(open, i)
		case (c == ']' || c == '}') && len(open) > 0:
			open = open[:len(open)-1]
		}
	}
	if len(open) == 0 {
		return 0
	}
	return open[0] + 1
}

// keyOfLine returns the key path ("cache.quota") of the mapping key on
// 1-based line n, found from the indentation of the lines above it, or ""
// when it cannot tell (no key on the line, or a list on the way up).
func keyOfLine(lines []string, n int) string {
	if n < 1 || n > len(lines) {
		return ""
	}
	key, indent, ok := yamlKeyLine(lines[n-1])
	if !ok {
		return ""
	}
	path := key
	for i := n - 2; i >= 0 && indent > 0; i-- {
		k, in, ok := yamlKeyLine(lines[i])
		trimmed := strings.TrimSpace(lines[i])
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || in >= indent {
			continue
		}
		if !ok {
			return ""
		}
		path, indent = k+"."+path, in
	}
	return path
}

// yamlKeyLine reads "  key: ..." as key and its indentation (tabs count
// as one column each); ok is false for other lines, such as list items.
func yamlKeyLine(line string) (key string, indent int, ok bool) {
	body := strings.TrimLeft(line, " \t")
	indent = len(line) - len(body)
	k, _, found := strings.Cut(body, ":")
	k = strings.TrimSpace(k)
	if !found || k == "" || !isPlainKey(k) {
		return "", indent, false
	}
	return k, indent, true
}

// isPlainKey accepts keys like "source-caches" whose only special
// character is an inner dash.
func isPlainKey(k string) bool {
	return !strings.HasPrefix(k, "-") && !strings.ContainsAny(k, "[]{}#,\"' ")
}

func allBlank(lines []string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			return false
		}
	}
	return true
}
