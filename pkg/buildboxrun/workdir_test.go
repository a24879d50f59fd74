package buildboxrun

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestWorkDir(t *testing.T) {
	t.Log("the sysroot is staged beside BuildStream's cache (its tmp/), not in /tmp, when the socket is there")
	cache := t.TempDir()
	if err := os.Mkdir(filepath.Join(cache, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(os.TempDir(), fmt.Sprintf("castd-buildbox-run-%d", os.Getuid()))
	for remote, want := range map[string]string{
		"unix:" + cache + "/casserver-x.sock":       filepath.Join(cache, "tmp"),
		"unix://" + cache + "/casserver-x.sock":     filepath.Join(cache, "tmp"),
		"unix:" + t.TempDir() + "/casserver-x.sock": other,
		"grpc://127.0.0.1:1":                        other,
	} {
		if got := workDir(remote); got != want {
			t.Errorf("workDir(%q) = %q, want %q", remote, got, want)
		}
	}
}
