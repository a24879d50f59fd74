package policy_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/policy"
)

// tlsListen is the listen-tls block a grpcs listener needs.
const tlsListen = "listen-tls: {server-cert: certs/server.crt, server-key: certs/server.key}\n"

func TestRemoteLoopsBackToListener(t *testing.T) {
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	defaultSock := filepath.Join(run, "castd", "castd.sock")
	const f = userFile
	const sock = "/run/user/1000/castd/castd.sock"
	// loop is the error line for the remote at key (line:col at) naming
	// listener.
	loop := func(at, key, url, listener string) string {
		return f + ":" + at + ": " + key + ": remote " + url + " is castd's own listener " + listener +
			": castd would ask itself for every blob it lacks; point the url at another server"
	}
	tests := []struct {
		name, why, text string
		want            string // the complete Error() line; "" for a valid config
	}{
		{
			name: "unix path",
			why:  "the BuildStream recipe's mistake: artifacts url is castd's own socket",
			text: "listen:\n  - unix:" + sock + "\nartifacts:\n  servers:\n  - url: unix:" + sock + "\n",
			want: loop("5:10", "artifacts.servers[0].url", "unix:"+sock, "listen[0] (unix:"+sock+", line 2)"),
		},
		{
			name: "unix triple slash",
			why:  "unix:///PATH is the same socket as unix:PATH",
			text: "listen: [unix:" + sock + "]\nsource-caches:\n  servers:\n  - url: unix://" + sock + "\n",
			want: loop("4:10", "source-caches.servers[0].url", "unix://"+sock, "listen[0] (unix:"+sock+", line 1)"),
		},
		{
			name: "unix uncleaned path",
			why:  "a path with .. and doubled slashes names the same socket after cleaning",
			text: "listen: [unix:" + sock + "]\ncache:\n  storage-service:\n    url: unix:/run/user/1000/tmp/..//castd/castd.sock\n",
			want: loop("4:10", "cache.storage-service.url", "unix:/run/user/1000/tmp/..//castd/castd.sock", "listen[0] (unix:"+sock+", line 1)"),
		},
		{
			name: "default socket",
			why:  "with listen: unset castd serves on $XDG_RUNTIME_DIR/castd/castd.sock; a remote there is castd itself",
			text: "remote-execution:\n  action-cache-service: {url: 'unix://" + defaultSock + "'}\n  storage-service: {url: 'grpc://cas.example.com:1'}\n",
			want: loop("2:31", "remote-execution.action-cache-service.url", "unix://"+defaultSock, "unix:"+defaultSock+" (the default listen address; listen: is not set)"),
		},
		{
			name: "grpc same address",
			why:  "grpc://HOST:PORT of a TCP listener, second in the list",
			text: "listen: [unix:" + sock + ", grpc://127.0.0.1:7011]\nprojects:\n  p:\n    artifacts:\n      servers:\n      - {url: 'grpc://127.0.0.1:7011'}\n",
			want: loop("6:15", "projects.p.artifacts.servers[0].url", "grpc://127.0.0.1:7011", "listen[1] (grpc://127.0.0.1:7011, line 1)"),
		},
		{
			name: "http localhost to a wildcard listener",
			why:  "BuildStream's http:// form reaches a grpc:// listener on 0.0.0.0 through loopback",
			text: "listen: [grpc://0.0.0.0:7012]\nartifacts:\n  servers:\n  - url: http://localhost:7012\n",
			want: loop("4:10", "artifacts.servers[0].url", "http://localhost:7012", "listen[0] (grpc://0.0.0.0:7012, line 1)"),
		},
		{
			name: "grpcs ipv6 loopback to a wildcard listener",
			why:  "[::1] reaches a grpcs listener on [::]",
			text: "listen: ['grpcs://[::]:7013']\n" + tlsListen + "artifacts:\n  servers:\n  - url: 'grpcs://[::1]:7013'\n",
			want: loop("5:10", "artifacts.servers[0].url", "grpcs://[::1]:7013", "listen[0] (grpcs://[::]:7013, line 1)"),
		},
		{
			name: "https default port",
			why:  "https://localhost means port 443, the port of a grpcs listener on 127.0.0.1:443",
			text: "listen: ['grpcs://127.0.0.1:443']\n" + tlsListen + "artifacts:\n  servers:\n  - url: https://localhost\n",
			want: loop("5:10", "artifacts.servers[0].url", "https://localhost", "listen[0] (grpcs://127.0.0.1:443, line 1)"),
		},
		{
			name: "other socket",
			why:  "another daemon's socket is a remote like any other",
			text: "listen: [unix:" + sock + "]\nartifacts:\n  servers:\n  - url: unix:/run/user/1000/other/castd.sock\n",
		},
		{
			name: "other port",
			why:  "another port on loopback is another server",
			text: "listen: [grpc://127.0.0.1:7014]\nartifacts:\n  servers:\n  - url: grpc://127.0.0.1:7015\n",
		},
		{
			name: "plaintext to a TLS listener",
			why:  "grpc:// to a grpcs listener cannot connect, so it cannot loop either",
			text: "listen: [grpcs://127.0.0.1:7016]\n" + tlsListen + "artifacts:\n  servers:\n  - url: grpc://127.0.0.1:7016\n",
		},
		{
			name: "other host on a wildcard listener's port",
			why:  "a named host is not resolved: cache.example.com:7017 is assumed to be another machine",
			text: "listen: [grpc://0.0.0.0:7017]\nartifacts:\n  servers:\n  - url: grpc://cache.example.com:7017\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			_, err := policy.ParseUser(f, []byte(tc.text))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ParseUser: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseUser accepted a remote that is castd itself; want %s", tc.want)
			}
			got := errorList(t, err)
			lines := make([]string, len(got))
			for i, e := range got {
				lines[i] = e.Error()
			}
			if len(got) != 1 || lines[0] != tc.want {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(lines, "\n"), tc.want)
			}
		})
	}
}
