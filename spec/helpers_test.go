package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

const task = "version: '3'\ntasks:\n  install:\n    cmds:\n      - echo ok\n"

// loadFiles loads a project made of files (path -> content). A layer name
// in layers gets a root.yml so that it is valid on its own; layer.yml
// content for it goes in files.
func loadFiles(t testing.TB, images string, files map[string]string, layers ...string) (*Project, error) {
	t.Helper()
	fsys := fstest.MapFS{"images.yml": {Data: []byte(images)}}
	for _, l := range layers {
		fsys["layers/"+l+"/root.yml"] = &fstest.MapFile{Data: []byte(task)}
	}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return load(fsys, "/project")
}

// mustLoad is loadFiles that fails the test on any error.
func mustLoad(t testing.TB, images string, files map[string]string, layers ...string) *Project {
	t.Helper()
	p, err := loadFiles(t, images, files, layers...)
	if err != nil {
		t.Fatalf("load: %v\nimages.yml:\n%s", err, images)
	}
	return p
}

// yml dedents a test YAML literal written with tabs.
func yml(s string) string {
	s = strings.TrimPrefix(s, "\n")
	lines := strings.Split(s, "\n")
	indent := len(lines[0]) - len(strings.TrimLeft(lines[0], "\t"))
	for i, l := range lines {
		if len(l) >= indent && strings.TrimLeft(l[:indent], "\t") == "" {
			l = l[indent:]
		}
		lines[i] = strings.ReplaceAll(l, "\t", "  ")
	}
	return strings.Join(lines, "\n")
}
