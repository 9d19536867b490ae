package plan_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/overthink/ov/installfile"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// A new install-file kind is one entry in installfile.Kinds: spec finds and
// checks it, plan gives it a step as the entry says (user, cache, command),
// and a layer with only that file validates.
func TestNewInstallKindIsOneEntry(t *testing.T) {
	kind := &installfile.Kind{Name: "go.mod", Files: []string{"go.mod"}, Dir: "cmd", Cache: installfile.CargoCache,
		Shell: func(mount string, f installfile.File) string { return "cd " + mount + " && go install ./cmd/..." }}
	saved := installfile.Kinds
	installfile.Kinds = append(slices.Clone(saved), kind)
	t.Cleanup(func() { installfile.Kinds = saved })

	dir := t.TempDir()
	for name, body := range map[string]string{
		"images.yml":             "images:\n  app:\n    base: debian:bookworm\n    pkg: deb\n    layers: [gotool, nocmd]\n",
		"layers/gotool/go.mod":   "module example.com/t\n",
		"layers/gotool/cmd/t.go": "package main\n",
		"layers/nocmd/go.mod":    "module example.com/u\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := spec.Load(dir)
	if err == nil || err.Error() != "validation error: layers/nocmd/go.mod: go.mod requires a cmd/ directory next to it" {
		t.Fatalf("Load: %v, want the missing cmd/ reported", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "layers/nocmd/cmd"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := plan.Build(p, nil, plan.Options{CalVer: "1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []plan.Step
	for _, s := range plans[0].Steps {
		if s.Desc == "go.mod" {
			got = append(got, s)
		}
	}
	if len(got) != 2 {
		t.Fatalf("go.mod steps: %+v", plans[0].Steps)
	}
	s := got[0]
	if s.Layer != "gotool" || s.User != "1000" || s.Shell != "cd /ctx && go install ./cmd/..." || !s.Detach ||
		len(s.Mounts) != 2 || s.Mounts[0].From != "gotool" || s.Mounts[1].ID != "ov-cargo-1000" {
		t.Errorf("step %+v", s)
	}
}
