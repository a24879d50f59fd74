package integration_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runScript writes files, a directory with an executable and a symlink, and
// prints to both streams, then exits with $CODE.
const runScript = `echo out-line; echo err-line >&2; echo data > result.txt; ` +
	`mkdir -p gen/sub; printf '#!/bin/sh\n' > gen/sub/tool; chmod +x gen/sub/tool; ln -s tool gen/sub/alias; exit $CODE`

func TestBstRun(t *testing.T) {
	t.Log("bst run executes through castd, writes outputs back, exits with the action's code, and the second run is a cache hit")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "input.txt"), []byte("in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(code string, extra ...string) bstResult {
		args := append([]string{"run", "--env", "CODE=" + code, "--output", "result.txt", "--output", "gen/"}, extra...)
		return bst(t, p.socket, dir, append(args, "--", "sh", "-c", runScript)...)
	}
	first := run("0")
	requireServed(t, first, "Execution")

	t.Run("first run executes", func(t *testing.T) {
		t.Log("stdout and stderr are relayed and stderr says the action was executed")
		if first.code != 0 || first.stdout != "out-line\n" || !strings.Contains(first.stderr, "err-line") ||
			!strings.Contains(first.stderr, "execution (action ") {
			t.Errorf("exit %d, stdout %q, stderr %q", first.code, first.stdout, first.stderr)
		}
	})
	t.Run("outputs written", func(t *testing.T) {
		t.Log("files, directories with exec bits and symlinks land in the working tree")
		data, _ := os.ReadFile(filepath.Join(dir, "result.txt"))
		fi, err := os.Stat(filepath.Join(dir, "gen", "sub", "tool"))
		target, _ := os.Readlink(filepath.Join(dir, "gen", "sub", "alias"))
		if string(data) != "data\n" || err != nil || fi.Mode().Perm()&0o100 == 0 || target != "tool" {
			t.Errorf("result.txt %q, tool %v %v, alias -> %q", data, fi, err, target)
		}
	})
	t.Run("second run cached", func(t *testing.T) {
		t.Log("the identical action is answered from castd's action cache")
		r := run("0")
		if r.code != 0 || r.stdout != "out-line\n" || !strings.Contains(r.stderr, "local cache hit") {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("no-cache runs again", func(t *testing.T) {
		t.Log("--no-cache skips the lookup")
		r := run("0", "--no-cache")
		if r.code != 0 || strings.Contains(r.stderr, "cache hit") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("ac get of the action", func(t *testing.T) {
		t.Log("the action digest bst reports resolves in the action cache")
		m := regexp.MustCompile(`action ([0-9a-f]{64}/\d+)`).FindStringSubmatch(first.stderr)
		if m == nil {
			t.Fatalf("no action digest in %q", first.stderr)
		}
		var res struct {
			ExitCode    int `json:"exit_code"`
			OutputFiles []struct {
				Path string `json:"path"`
			} `json:"output_files"`
		}
		decodeJSON(t, mustBst(t, p.socket, dir, "ac", "get", "--json", m[1]).stdout, &res)
		if res.ExitCode != 0 || len(res.OutputFiles) != 1 || res.OutputFiles[0].Path != "result.txt" {
			t.Errorf("ActionResult %+v", res)
		}
	})
	t.Run("failing action exit code", func(t *testing.T) {
		t.Log("bst exits with the action's own exit code")
		if r := run("3"); r.code != 3 {
			t.Errorf("exit %d, want 3; stderr %q", r.code, r.stderr)
		}
	})
}

func TestBstStatusAndRemotes(t *testing.T) {
	t.Log("status, remotes and config check report the daemon's live state as documented JSON")
	l := newLayout(t)
	p := startCastd(t, l, l.configYAML(""))
	r := bst(t, p.socket, "", "status", "--json")
	requireServed(t, r, "Control")
	var st struct {
		Running   bool     `json:"running"`
		Socket    string   `json:"socket"`
		Version   string   `json:"version"`
		Listeners []string `json:"listeners"`
		Store     struct {
			Dir        string `json:"dir"`
			QuotaBytes int64  `json:"quota_bytes"`
		} `json:"store"`
		Remotes []any `json:"remotes"`
	}
	decodeJSON(t, r.stdout, &st)
	for name, ok := range map[string]bool{
		"running":    r.code == 0 && st.Running,
		"socket":     st.Socket == p.socket,
		"version":    st.Version != "",
		"listeners":  len(st.Listeners) > 0 && strings.Contains(st.Listeners[0], p.socket),
		"store dir":  st.Store.Dir == l.store,
		"quota":      st.Store.QuotaBytes > 0,
		"no remotes": st.Remotes != nil && len(st.Remotes) == 0,
	} {
		t.Run("status "+name, func(t *testing.T) {
			t.Log("each status field carries the daemon's value")
			if !ok {
				t.Errorf("status %+v (exit %d, stderr %q)", st, r.code, r.stderr)
			}
		})
	}
	proj := t.TempDir()
	conf := "name: demo\nartifacts:\n- url: grpc://127.0.0.1:1\n  type: all\n  push: true\n"
	if err := os.WriteFile(filepath.Join(proj, "project.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var rm struct {
		InstanceName string `json:"instance_name"`
		Project      struct {
			Project  string `json:"project"`
			Scenario string `json:"scenario"`
			Pull     struct {
				CAS []struct{ URL, Origin string } `json:"cas"`
			} `json:"pull"`
			Push struct {
				CAS []any `json:"cas"`
			} `json:"push"`
		} `json:"project"`
	}
	decodeJSON(t, mustBst(t, p.socket, "", "remotes", "--project", proj, "--json").stdout, &rm)
	for name, ok := range map[string]bool{
		"instance name":      rm.InstanceName != "",
		"project name":       rm.Project.Project == "demo",
		"scenario":           rm.Project.Scenario != "",
		"recommended remote": len(rm.Project.Pull.CAS) == 1 && rm.Project.Pull.CAS[0].URL == "grpc://127.0.0.1:1" && rm.Project.Pull.CAS[0].Origin == "project",
		"never pushed to":    len(rm.Project.Push.CAS) == 0,
	} {
		t.Run("remotes "+name, func(t *testing.T) {
			t.Log("the project's resolution comes back field by field; project remotes are pull-only")
			if !ok {
				t.Errorf("remotes %+v", rm)
			}
		})
	}
	t.Run("config check", func(t *testing.T) {
		t.Log("the daemon's report is valid JSON with the global entry and the project")
		var rep struct {
			Valid    bool  `json:"valid"`
			Projects []any `json:"projects"`
		}
		decodeJSON(t, mustBst(t, p.socket, "", "config", "check", "--project", proj, "--json").stdout, &rep)
		if !rep.Valid || len(rep.Projects) != 2 {
			t.Errorf("report %+v", rep)
		}
	})
}

func TestBstArtifactThroughRemote(t *testing.T) {
	t.Log("an artifact pushed to one castd is pulled through another castd that has it as a remote")
	la := newLayout(t)
	a := startCastd(t, la, fmtListen(la, "grpc://127.0.0.1:0"))
	lb := newLayout(t)
	b := startCastd(t, lb, lb.configYAML("artifacts:\n  servers:\n  - url: grpc://"+a.listenAddr("grpc")+"\n    type: all\n"))
	src := filepath.Join(t.TempDir(), "art")
	writeTree(t, src, 1<<10)
	r := bst(t, a.socket, "", "artifact", "push", "demo/hello/abc", src)
	requireServed(t, r, "Remote Asset")
	if r.code != 0 {
		t.Fatalf("push: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Run("pull through remote", func(t *testing.T) {
		t.Log("castd B finds the ref and the blobs on castd A")
		out := filepath.Join(t.TempDir(), "pulled")
		mustBst(t, b.socket, "", "artifact", "pull", "demo/hello/abc", out)
		want, got := treeShape(t, src), treeShape(t, out)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: got %q, want %q", k, got[k], v)
			}
		}
	})
	t.Run("source ref missing", func(t *testing.T) {
		t.Log("an unknown source key fails with exit 1")
		if r := bst(t, b.socket, "", "source", "pull", "nope", filepath.Join(t.TempDir(), "x")); r.code != 1 {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// fmtListen is l's config with an extra listener.
func fmtListen(l *layout, extra string) string {
	return strings.Replace(l.configYAML(""), "listen:\n", "listen:\n  - "+extra+"\n", 1)
}
