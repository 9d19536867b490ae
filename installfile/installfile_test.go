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
			`npm install -g --logs-max=0 '@scope/b@^1.2 || 2.x' 'a@*' 'some-cli@*'`, ""},
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
				if len(f.Deps) != 0 || !strings.Contains(got, "npm pack --logs-max=0 /ctx") {
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

// With a pixi.lock the stage installs exactly the lock; a manifest that
// builds from source (PyPI or git) gets a compiler and git in its stage.
func TestPixi(t *testing.T) {
	const conda = "[workspace]\nname = \"x\"\n\n[dependencies]\npython = \"3.13.*\"\n"
	for _, c := range []struct {
		name, file, manifest string
		lock                 bool
		install              string
		sources              bool
	}{
		{"conda only", "pixi.toml", conda, false, "pixi install", false},
		{"locked", "pixi.toml", conda, true, "pixi install --frozen", false},
		{"pypi", "pixi.toml", conda + "\n[pypi-dependencies]\nflash-attn = \"*\"\n", true, "pixi install --frozen", true},
		{"empty pypi", "pixi.toml", conda + "\n[pypi-dependencies]\n", false, "pixi install", false},
		{"feature pypi", "pixi.toml", conda + "\n[feature.gpu.pypi-dependencies]\ntorch = \">=2\"\n", false, "pixi install", true},
		{"git source", "pixi.toml", conda + "mylib = { git = \"https://github.com/o/mylib\" }\n", false, "pixi install", true},
		{"pyproject deps", "pyproject.toml", "[project]\nname = \"a\"\ndependencies = [\"requests\"]\n", true, "pixi install --manifest-path pyproject.toml --frozen", true},
		{"pyproject conda", "pyproject.toml", "[project]\nname = \"a\"\n[tool.pixi.dependencies]\npython = \"*\"\n", false, "pixi install --manifest-path pyproject.toml", false},
		{"environment pip", "environment.yml", "name: a\ndependencies:\n  - python=3.12\n  - pip:\n      - requests\n", true, "pixi init --import environment.yml && pixi install", true},
		{"environment conda", "environment.yml", "name: a\ndependencies:\n  - python=3.12\n", false, "pixi init --import environment.yml && pixi install", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := fstest.MapFS{c.file: {Data: []byte(c.manifest)}}
			if c.lock {
				files["pixi.lock"] = &fstest.MapFile{Data: []byte("version: 6\n")}
			}
			f := File{Kind: ByName(c.file), Name: c.file}
			if err := f.Kind.Read(files, &f); err != nil {
				t.Fatal(err)
			}
			if got := f.Kind.Shell("", f); got != c.install {
				t.Errorf("install %q, want %q", got, c.install)
			}
			if setup := f.Kind.Setup(f); (setup != "") != c.sources || (c.sources && !strings.Contains(setup, "build-essential git")) {
				t.Errorf("setup %q, want a compiler and git: %v", setup, c.sources)
			}
		})
	}
	f := File{Kind: ByName("pixi.toml"), Name: "pixi.toml"}
	if err := f.Kind.Read(fstest.MapFS{"pixi.toml": {Data: []byte("[workspace\n")}}, &f); err == nil || !strings.Contains(err.Error(), "not a TOML manifest") {
		t.Errorf("broken pixi.toml: %v", err)
	}
}
