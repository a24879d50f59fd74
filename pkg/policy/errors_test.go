package policy_test

import (
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

func TestUserConfigErrors(t *testing.T) {
	const f = userFile
	tests := []struct {
		name, why, text string
		want            []string // each a complete Error() line
	}{
		{
			name: "servers as a mapping",
			why:  "the BuildStream 2 schema requires a list under servers",
			text: "# comment\n\n\n\nartifacts:\n  servers:\n    url: https://a.example.com\n",
			want: []string{f + ":7:5: artifacts.servers: expected a list, found a mapping"},
		},
		{
			name: "old-style artifacts list",
			why:  "a BuildStream 1 user config lists servers directly under artifacts",
			text: "artifacts:\n- url: https://a.example.com\n",
			want: []string{f + ":2:1: artifacts: expected a mapping with override-project-caches and servers, found a list (put the list under artifacts.servers)"},
		},
		{
			name: "tab in the indentation",
			why:  "yaml.v3 names the line before the tab, at column 1; the error must point at the tab",
			text: "log-level: info\ncache:\n  quota: 1G\n\tlow-watermark: 80%\n",
			want: []string{f + ":4:1: cache.low-watermark: invalid YAML: found a tab character that violates indentation (YAML indents with spaces, not tabs)"},
		},
		{
			name: "tab after spaces",
			why:  "a tab after some spaces is found at its own column",
			text: "a: 1\ncache:\n  \tquota: 1G\n",
			want: []string{f + ":3:3: cache.quota: invalid YAML: found character that cannot start any token (YAML indents with spaces, not tabs)"},
		},
		{
			name: "unclosed flow sequence",
			why:  "yaml.v3 reports a 0-based line for parser errors; the error points at the [ left open",
			text: "log-level: info\nlisten: [unix:/a,\nmetrics: x\n",
			want: []string{f + ":2:9: listen: invalid YAML: did not find expected ',' or ']': the [ here is never closed"},
		},
		{
			name: "BuildStream 1 single server",
			why:  "BuildStream 1 wrote artifacts: {url: ..., push: true}; the hint says where the server goes now",
			text: "artifacts:\n  url: https://a.example.com\n  push: true\n",
			want: []string{f + ":2:3: artifacts: expected a mapping with override-project-caches and servers, found a single server (BuildStream 1 syntax; put it in a list under artifacts.servers: servers: [{url: ...}])"},
		},
		{
			name: "unknown top-level key",
			why:  "a typo must not be silently ignored in the user config",
			text: "log-level: info\nlog-levle: debug\n",
			want: []string{f + ":2:1: log-levle: unknown key; expected one of listen, listen-tls, listen-auth, log-request-metadata, socket-mode, metrics, log-level, store-dir, registration-ttl, cache, local-execution, remote-platform, artifacts, source-caches, remote-execution, projects"},
		},
		{
			name: "unknown server key",
			why:  "unknown keys are errors at every level",
			text: "artifacts:\n  servers:\n  - url: https://a.example.com\n    pushh: true\n",
			want: []string{f + ":4:5: artifacts.servers[0].pushh: unknown key; expected one of url, type, push, instance-name, auth, connection-config"},
		},
		{
			name: "missing url",
			why:  "a server without url cannot be contacted",
			text: "artifacts:\n  servers:\n  - type: index\n",
			want: []string{f + ":3:5: artifacts.servers[0]: missing url; expected a URL such as https://cache.example.com:11001"},
		},
		{
			name: "empty url",
			why:  "an empty url is as useless as a missing one",
			text: "artifacts:\n  servers:\n  - url: ''\n",
			want: []string{f + ":3:10: artifacts.servers[0].url: expected a non-empty URL, found an empty string"},
		},
		{
			name: "url with an unknown scheme",
			why:  "only http, https, grpc, grpcs and unix: can be dialled",
			text: "artifacts:\n  servers:\n  - url: ftp://a.example.com\n",
			want: []string{f + `:3:10: artifacts.servers[0].url: expected a URL with scheme http, https, grpc, grpcs (and a host) or unix:PATH, found "ftp://a.example.com"`},
		},
		{
			name: "unknown type",
			why:  "the error lists the valid types",
			text: "source-caches:\n  servers:\n  - url: https://a.example.com\n    type: cas\n",
			want: []string{f + `:4:11: source-caches.servers[0].type: expected one of index, storage, all (or both, read as all), found "cas"`},
		},
		{
			name: "client-key without client-cert",
			why:  "mutual TLS needs both halves",
			text: "artifacts:\n  servers:\n  - url: https://a.example.com\n    auth:\n      client-key: certs/client.key\n",
			want: []string{f + ":5:7: artifacts.servers[0].auth.client-key: client-key is set without client-cert; client authentication needs both"},
		},
		{
			name: "client-cert without client-key",
			why:  "the reverse is just as incomplete",
			text: "artifacts:\n  servers:\n  - url: https://a.example.com\n    auth:\n      client-cert: certs/client.crt\n",
			want: []string{f + ":5:7: artifacts.servers[0].auth.client-cert: client-cert is set without client-key; client authentication needs both"},
		},
		{
			name: "unreadable certificate",
			why:  "the error names the file that cannot be read",
			text: "artifacts:\n  servers:\n  - url: https://a.example.com\n    auth: {server-cert: certs/missing.pem}\n",
			want: []string{f + `:4:25: artifacts.servers[0].auth.server-cert: cannot read certificate file "testdata/certs/missing.pem": no such file or directory`},
		},
		{
			name: "unreadable token",
			why:  "an access token file is checked the same way",
			text: "artifacts:\n  servers:\n  - url: https://a.example.com\n    auth: {access-token: certs/nope.txt}\n",
			want: []string{f + `:4:26: artifacts.servers[0].auth.access-token: cannot read access token file "testdata/certs/nope.txt": no such file or directory`},
		},
		{
			name: "invalid quota",
			why:  "the error lists the valid forms",
			text: "cache:\n  quota: 20 gigs\n",
			want: []string{f + `:2:10: cache.quota: invalid size "20 gigs": expected a byte count (1000), a size with a K, M, G or T suffix (512K, 20G, 1.5T; powers of 1024), or a percentage of the filesystem (50%)`},
		},
		{
			name: "read buffer limit as a percentage",
			why:  "a memory limit is a size; the filesystem has nothing to do with it",
			text: "cache:\n  read-buffer-limit: 10%\n",
			want: []string{f + `:2:22: cache.read-buffer-limit: expected a size such as 256M, found a percentage`},
		},
		{
			name: "sync-writes not a boolean",
			why:  "cache.sync-writes is on or off; a typo must not silently leave it off",
			text: "cache:\n  sync-writes: always\n",
			want: []string{f + `:2:16: cache.sync-writes: expected true or false, found a string`},
		},
		{
			name: "unknown digest function",
			why:  "a misspelt function would silently refuse that function's clients",
			text: "cache:\n  digest-functions: [sha256, blake2]\n",
			want: []string{f + `:2:30: cache.digest-functions[1]: unknown digest function "blake2"; expected one of sha256,sha1,md5,sha384,sha512,blake3`},
		},
		{
			name: "unknown remotes compression",
			why:  "cache.remotes.compression is auto or off; a typo must not silently keep zstd on",
			text: "cache:\n  remotes:\n    compression: gzip\n",
			want: []string{f + `:3:18: cache.remotes.compression: expected one of auto, off, found "gzip"`},
		},
		{
			name: "zero upload idle timeout",
			why:  "an upload must be dropped after some time without progress",
			text: "cache:\n  upload-idle-timeout: 0s\n",
			want: []string{f + `:2:24: cache.upload-idle-timeout: expected a positive duration such as 60s`},
		},
		{
			name: "missing storage-service",
			why:  "remote execution needs a CAS unless cache.storage-service provides one",
			text: "remote-execution:\n  execution-service: {url: https://re.example.com}\n",
			want: []string{f + ":2:3: remote-execution: missing storage-service; it is required unless cache.storage-service is set"},
		},
		{
			name: "neither execution nor action cache service",
			why:  "a remote-execution block with only storage does nothing",
			text: "remote-execution:\n  storage-service: {url: https://cas.example.com}\n",
			want: []string{f + ":2:3: remote-execution: expected execution-service or action-cache-service (or both); found neither"},
		},
		{
			name: "push on execution-service",
			why:  "push is only meaningful on the action-cache-service",
			text: "remote-execution:\n  execution-service: {url: https://re.example.com, push: true}\n  storage-service: {url: https://cas.example.com}\n",
			want: []string{f + ":2:52: remote-execution.execution-service.push: push is only valid on remote-execution.action-cache-service"},
		},
		{
			name: "service without url",
			why:  "every service block needs a url",
			text: "remote-execution:\n  action-cache-service: {push: true}\n  storage-service: {url: https://cas.example.com}\n",
			want: []string{f + ":2:25: remote-execution.action-cache-service: missing url; expected a URL such as https://cache.example.com:11001"},
		},
		{
			name: "per-project remote-execution is validated too",
			why:  "an override block follows the same rules as the global one",
			text: "projects:\n  foo:\n    remote-execution:\n      action-cache-service: {url: https://ac.example.com}\n",
			want: []string{f + ":4:7: projects.foo.remote-execution: missing storage-service; it is required unless cache.storage-service is set"},
		},
		{
			name: "wrong scalar type",
			why:  "a string where a boolean is expected names the key and the expected type",
			text: "artifacts:\n  override-project-caches: yes please\n",
			want: []string{f + ":2:28: artifacts.override-project-caches: expected true or false, found a string"},
		},
		{
			name: "several errors are all reported",
			why:  "users fix everything in one round instead of one error per run",
			text: "log-level: loud\nsocket-mode: 999\nlisten: [tcp://x]\n",
			want: []string{
				f + `:1:12: log-level: expected one of debug, info, warn, error, found "loud"`,
				f + `:2:14: socket-mode: expected an octal permission mode from 0000 to 0777 such as "0600", found "999"`,
				f + `:3:10: listen[0]: expected unix:PATH, grpc://HOST:PORT or grpcs://HOST:PORT, found "tcp://x"`,
			},
		},
		{
			name: "grpcs listener without certificate",
			why:  "a TLS listener cannot start without a server certificate",
			text: "listen: ['grpcs://0.0.0.0:8980']\n",
			want: []string{f + ":1:10: listen[0]: a grpcs listener needs listen-tls.server-cert and listen-tls.server-key"},
		},
		{
			name: "syntax error",
			why:  "broken YAML is reported with its line, not as a panic or a generic failure",
			text: "artifacts:\n  servers: [\n",
			want: []string{f + ":2:12: artifacts.servers: invalid YAML: did not find expected node content: the [ here is never closed"},
		},
		{
			name: "top level is a list",
			why:  "the file must be a mapping of settings",
			text: "- a\n- b\n",
			want: []string{f + ":1:1: expected a mapping of settings at the top level, found a list"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			_, err := policy.ParseUser(userFile, []byte(tc.text))
			if err == nil {
				t.Fatalf("ParseUser accepted invalid config (%s)", tc.why)
			}
			es := errorList(t, err)
			got := make([]string, len(es))
			for i, e := range es {
				got[i] = e.Error()
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n got  %q\n want %q", got, tc.want)
			}
			if err.Error() != strings.Join(tc.want, "\n") {
				t.Errorf("Error() = %q, want the errors one per line", err.Error())
			}
		})
	}
}

func TestProjectConfigErrors(t *testing.T) {
	const f = projectFile
	tests := []struct {
		name, why, text string
		want            []string
	}{
		{
			name: "artifacts as a mapping",
			why:  "project.conf artifacts is a plain list of servers",
			text: "name: foo\n\nartifacts:\n  url: https://a.example.com\n",
			want: []string{f + ":4:3: artifacts: expected a list of servers, found a mapping"},
		},
		{
			name: "source-caches as a mapping",
			why:  "the same rule holds for source caches",
			text: "name: foo\nsource-caches:\n  servers: []\n",
			want: []string{f + ":3:3: source-caches: expected a list of servers, found a mapping"},
		},
		{
			name: "remote-execution in project.conf",
			why:  "remote execution is chosen by the user, not by the project",
			text: "name: foo\nremote-execution:\n  execution-service: {url: https://re.example.com}\n",
			want: []string{f + ":2:1: remote-execution: not allowed in project.conf; remote execution belongs in the user configuration (castd.yaml)"},
		},
		{
			name: "unknown key inside a server",
			why:  "remote-related keys are validated strictly even in project.conf",
			text: "name: foo\nartifacts:\n- url: https://a.example.com\n  puhs: true\n",
			want: []string{f + ":4:3: artifacts[0].puhs: unknown key; expected one of url, type, push, instance-name, auth, connection-config"},
		},
		{
			name: "unreadable certificate relative to the project",
			why:  "project auth paths resolve against the project directory and are checked",
			text: "name: foo\nartifacts:\n- url: https://a.example.com\n  auth: {server-cert: nope.pem}\n",
			want: []string{f + `:4:23: artifacts[0].auth.server-cert: cannot read certificate file "testdata/nope.pem": no such file or directory`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			_, err := policy.ParseProject("testdata", projectFile, []byte(tc.text))
			if err == nil {
				t.Fatalf("ParseProject accepted invalid config (%s)", tc.why)
			}
			if got := err.Error(); got != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n got  %q\n want %q", got, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestProjectConfigIgnoresBuildStreamKeys(t *testing.T) {
	// A real BuildStream project.conf has many keys castd has no use for.
	p := mustProject(t, `
name: foo
min-version: 2.0
element-path: elements
options: {arch: {type: arch, values: [x86_64]}}
variables: {prefix: /usr}
artifacts:
- url: https://a.example.com
  type: both
  auth: {server-cert: certs/ca.pem}
`)
	if p.Name != "foo" || len(p.Artifacts) != 1 || p.Artifacts[0].Type != policy.TypeAll {
		t.Fatalf("project = %+v", p)
	}
	if p.Artifacts[0].Auth.ServerCert != "testdata/certs/ca.pem" {
		t.Errorf("server-cert = %q, want it relative to the project dir", p.Artifacts[0].Auth.ServerCert)
	}
}
