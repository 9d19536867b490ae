package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
)

// fuzzLayers is a small valid library the fuzzed images.yml can use.
var fuzzLayers = map[string]string{
	"layers/pixi/layer.yml":        "env:\n  PIXI_CACHE_DIR: ~/.cache/pixi\npath_append: [~/.pixi/bin]\n",
	"layers/pixi/pixi.toml":        "[workspace]\n",
	"layers/python/layer.yml":      "depends: [pixi]\n",
	"layers/python/pixi.toml":      "[workspace]\n",
	"layers/supervisord/layer.yml": "depends: [python]\n",
	"layers/supervisord/pixi.toml": "[workspace]\n",
	"layers/traefik/layer.yml":     "depends: [supervisord]\nports: [8000, 8080]\nservice: |\n  [program:traefik]\n",
	"layers/traefik/root.yml":      task,
	"layers/web/layer.yml":         "depends: [traefik, python]\nroute: {host: web.localhost, port: 9090}\n",
	"layers/web/user.yml":          task,
	"layers/tools/layer.yml":       "rpm:\n  packages: [git]\ndeb:\n  packages: [git]\n",
}

const fuzzImages = "images:\n  base:\n    layers: [tools, python]\n  web:\n    base: base\n    layers: [web]\n"

// seeds adds every file called name under testdata and the repository.
func seeds(f *testing.F, name string) {
	files, _ := filepath.Glob("testdata/invalid/*/" + name)
	more, _ := filepath.Glob("testdata/invalid/*/layers/*/" + name)
	shipped, _ := filepath.Glob("../layers/*/" + name)
	files = append(append(append(files, more...), shipped...), "../"+name)
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
}

func FuzzImagesYAML(f *testing.F) {
	seeds(f, "images.yml")
	f.Add([]byte(fuzzImages))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"images.yml": {Data: data}}
		for name, content := range fuzzLayers {
			fsys[name] = &fstest.MapFile{Data: []byte(content)}
		}
		checkLoad(t, fsys)
	})
}

func FuzzLayerYAML(f *testing.F) {
	seeds(f, "layer.yml")
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"images.yml": {Data: []byte(fuzzImages + "  x:\n    layers: [x, web]\n    base: web\n")}}
		for name, content := range fuzzLayers {
			fsys[name] = &fstest.MapFile{Data: []byte(content)}
		}
		fsys["layers/x/layer.yml"] = &fstest.MapFile{Data: data}
		fsys["layers/x/root.yml"] = &fstest.MapFile{Data: []byte(task)}
		checkLoad(t, fsys)
	})
}

// checkLoad loads fsys and checks the result's invariants: user errors only
// (the filesystem is in memory), each with a file; or a consistent project.
func checkLoad(t *testing.T, fsys fstest.MapFS) {
	p, err := load(fsys, "/p")
	if err != nil {
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("non-validation error: %v", err)
		}
		for _, e := range errs {
			if e.Pos.File == "" || e.Msg == "" {
				t.Fatalf("error without file or message: %#v", e)
			}
		}
		return
	}
	for i, name := range p.Order {
		img := p.Image(name)
		if img == nil || !img.Enabled || !ValidName(name) {
			t.Fatalf("bad image %q in order", name)
		}
		if img.Parent != "" && !slices.Contains(p.Order[:i], img.Parent) {
			t.Fatalf("%s comes before its parent %s", name, img.Parent)
		}
		if img.Pkg != "rpm" && img.Pkg != "deb" {
			t.Fatalf("%s: pkg %q", name, img.Pkg)
		}
		seen := map[string]bool{}
		for _, l := range p.Chain(img) {
			for _, layer := range l.Install {
				if seen[layer] || p.Layer(layer) == nil {
					t.Fatalf("%s: layer %q installed twice or unknown", name, layer)
				}
				seen[layer] = true
				for _, dep := range p.Layer(layer).Depends {
					if !seen[dep] {
						t.Fatalf("%s: %s installed before its dependency %s", name, layer, dep)
					}
				}
			}
		}
	}
}
