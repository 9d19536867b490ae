package installfile

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestKindsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds {
		if k.Shell == nil || len(k.Files) == 0 {
			t.Errorf("kind %q: no Shell or Files", k.Name)
		}
		for _, n := range k.Files {
			if seen[n] {
				t.Errorf("%s is claimed by two kinds", n)
			}
			seen[n] = true
		}
	}
}

// A package.json that lists tools installs each dependency globally with
// its range; one that is itself a package is packed and installed.
func TestPackageJSON(t *testing.T) {
	for _, c := range []struct {
		name  string
		files fstest.MapFS
		want  string // the command, "pack" for the packed manifest
		err   string
	}{
		{"wrapper", fstest.MapFS{"package.json": {Data: []byte(`{"name": "x-npm", "dependencies": {"some-cli": "*", "@scope/b": "^1.2 || 2.x", "a": ""}}`)}, "layer.yml": {}, "root.yml": {}},
			`npm install -g '@scope/b@^1.2 || 2.x' 'a@*' 'some-cli@*'`, ""},
		{"bin", fstest.MapFS{"package.json": {Data: []byte(`{"name": "t", "bin": {"t": "t.js"}, "dependencies": {"a": "1"}}`)}}, "pack", ""},
		{"main", fstest.MapFS{"package.json": {Data: []byte(`{"name": "t", "main": "x", "dependencies": {"a": "1"}}`)}}, "pack", ""},
		{"own js", fstest.MapFS{"package.json": {Data: []byte(`{"name": "t", "dependencies": {"a": "1"}}`)}, "index.js": {}}, "pack", ""},
		{"own lib", fstest.MapFS{"package.json": {Data: []byte(`{"name": "t", "dependencies": {"a": "1"}}`)}, "lib/x.js": {}}, "pack", ""},
		{"no deps", fstest.MapFS{"package.json": {Data: []byte(`{"name": "node-tool"}`)}}, "pack", ""},
		{"bad json", fstest.MapFS{"package.json": {Data: []byte(`{"name": `)}}, "", "not a package.json"},
		{"bad name", fstest.MapFS{"package.json": {Data: []byte(`{"dependencies": {"-rf": "1"}}`)}}, "", `"-rf" is not an npm package name`},
		{"bad range", fstest.MapFS{"package.json": {Data: []byte(`{"dependencies": {"a": "1\n2"}}`)}}, "", "is not a version range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := File{Kind: ByName("package.json"), Name: "package.json"}
			err := f.Kind.Read(c.files, &f)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := f.Kind.Shell("/ctx", f)
			if c.want == "pack" {
				if len(f.Deps) != 0 || !strings.Contains(got, "npm pack /ctx") {
					t.Errorf("deps %q, command %q: want the manifest packed", f.Deps, got)
				}
			} else if got != c.want {
				t.Errorf("command %q, want %q", got, c.want)
			}
		})
	}
}

func TestFilesShorthand(t *testing.T) {
	fs := Files("root.yml", "pixi.toml")
	if len(fs) != 2 || fs[1].Kind.Name != "pixi" || !slices.Contains(Names(), "environment.yml") {
		t.Errorf("Files = %+v", fs)
	}
}

