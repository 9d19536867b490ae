package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/spec"
)

// TestNewProjectValidates: the starter validates, carries the schema lines,
// and a second run refuses without touching what is there.
func TestNewProjectValidates(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := ov(t, "-C", dir, "new", "project"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, stderr, code := ov(t, "-C", dir, "validate"); code != 0 {
		t.Fatalf("the starter does not validate: %s", stderr)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "layers", "tools", "layer.yml"))
	if !strings.HasPrefix(string(data), "# yaml-language-server: $schema="+spec.SchemaURL("layer")+"\n") {
		t.Errorf("layer.yml lacks its schema line:\n%s", data)
	}
	if err := os.WriteFile(filepath.Join(dir, "images.yml"), []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := ov(t, "-C", dir, "new", "project"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second run: exit %d, %s", code, stderr)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "images.yml")); string(data) != "# mine\n" {
		t.Errorf("images.yml was overwritten: %q", data)
	}
	// Into a new directory named by the argument.
	if _, stderr, code := ov(t, "-C", dir, "new", "project", "sub/proj"); code != 0 {
		t.Fatalf("new project sub/proj: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "proj", "layers", "dotfiles", "user.yml")); err != nil {
		t.Error(err)
	}
}

// TestNewProjectBuilds builds a fresh starter with ov build on a real
// buildkitd (linux/amd64) and checks what each layer put in the image.
func TestNewProjectBuilds(t *testing.T) {
	envFlags := buildEnv(t)
	dir := t.TempDir()
	if _, stderr, code := ov(t, "-C", dir, "new", "project"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "oci")
	_, stderr, code := ov(t, append([]string{"-C", dir, "build", "--progress", "plain",
		"--platform", "linux/amd64", "--output", "oci:" + out, "app"}, envFlags...)...)
	if code != 0 {
		t.Fatalf("ov build: exit %d:\n%s", code, stderr)
	}
	snap, err := testenv.ReadOCI(filepath.Join(out, "app"), "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]testenv.File{
		"/usr/bin/jq":              {Mode: 0o755},
		"/usr/local/bin/greet":     {Mode: 0o755},
		"/home/user/.local/bin/hi": {Mode: 0o755, UID: 1000, GID: 1000},
	} {
		f, ok := snap.Files[path]
		if !ok {
			t.Errorf("%s is missing", path)
			continue
		}
		if f.Mode&0o777 != want.Mode || f.UID != want.UID || f.GID != want.GID {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", path, f.Mode, f.UID, f.GID, want.Mode, want.UID, want.GID)
		}
	}
	if !slices.Contains(snap.Config.Env, "GREETING=hello from ov") {
		t.Errorf("env %v lacks GREETING", snap.Config.Env)
	}
	if !slices.ContainsFunc(snap.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=/home/user/.local/bin:") }) {
		t.Errorf("env %v: PATH does not start with ~/.local/bin", snap.Config.Env)
	}
	if snap.Config.User != "1000" {
		t.Errorf("user %q", snap.Config.User)
	}
}
