package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivateDir(t *testing.T) {
	tests := []struct {
		name    string
		why     string
		prepare func(t *testing.T, dir string)
		wantErr string
	}{
		{name: "missing", why: "the first start creates it 0700"},
		{
			name:    "open to others",
			why:     "another user could swap the socket in a world-writable directory",
			prepare: func(t *testing.T, dir string) { mkdirMode(t, dir, 0o777) },
			wantErr: "open to other users",
		},
		{
			name: "a file",
			why:  "a file in the way is not silently replaced",
			prepare: func(t *testing.T, dir string) {
				if err := os.WriteFile(dir, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log(tt.why)
			dir := filepath.Join(t.TempDir(), "castd-uid")
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			err := privateDir(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("privateDir error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode = %v (%v), want 0700", fi.Mode(), err)
			}
		})
	}
}

func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // the umask may have narrowed it
		t.Fatal(err)
	}
}
