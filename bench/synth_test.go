package bench

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/overthink/ov/spec"
)

// TestWriteProject checks that the synthetic project is valid, has the
// advertised size, and has the shape the benchmark claims: deep and wide
// layer graphs, deep base chains, both package families, every kind of
// install file, and every layer in use.
func TestWriteProject(t *testing.T) {
	dir := t.TempDir()
	if err := WriteProject(dir, Issue7); err != nil {
		t.Fatal(err)
	}
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Order) != Issue7.Images || len(p.Layers) != Issue7.Layers {
		t.Fatalf("got %d enabled images and %d layers, want %d and %d", len(p.Order), len(p.Layers), Issue7.Images, Issue7.Layers)
	}

	installed := map[string]bool{}
	pkgs := map[string]int{}
	maxChain, maxInstall := 0, 0
	for _, name := range p.Order {
		img := p.Images[name]
		for _, l := range img.Install {
			installed[l] = true
		}
		pkgs[img.Pkg]++
		maxChain = max(maxChain, len(p.Chain(img)))
		maxInstall = max(maxInstall, len(img.Install))
	}
	if len(installed) != len(p.Layers) {
		t.Errorf("%d of %d layers are installed by some image, want all", len(installed), len(p.Layers))
	}
	if pkgs["deb"] == 0 || pkgs["rpm"] == 0 {
		t.Errorf("images per pkg: %v, want both deb and rpm", pkgs)
	}
	if maxChain < 5 {
		t.Errorf("deepest base chain has %d images, want >= 5", maxChain)
	}
	if maxInstall < chainLen {
		t.Errorf("largest install order has %d layers, want >= %d", maxInstall, chainLen)
	}

	// Depth of the depends graph, fan-in and fan-out.
	depth := map[string]int{}
	var depthOf func(string) int
	depthOf = func(n string) int {
		if d, ok := depth[n]; ok {
			return d
		}
		d := 1
		for _, dep := range p.Layers[n].Depends {
			d = max(d, 1+depthOf(dep))
		}
		depth[n] = d
		return d
	}
	dependents := map[string]int{}
	maxDepth, maxFanIn := 0, 0
	has := map[string]int{}
	for name, l := range p.Layers {
		maxDepth = max(maxDepth, depthOf(name))
		maxFanIn = max(maxFanIn, len(l.Depends))
		for _, d := range l.Depends {
			dependents[d]++
		}
		for _, f := range l.Installs {
			has[f.Name]++
		}
		for what, ok := range map[string]bool{
			"deb": l.Deb != nil, "rpm": l.Rpm != nil,
			"env": len(l.Env) > 0, "path_append": len(l.PathAppend) > 0, "ports": len(l.Ports) > 0,
			"service": l.Service != "", "route": l.Route != nil, "copr": l.Rpm != nil && len(l.Rpm.Copr) > 0,
		} {
			if ok {
				has[what]++
			}
		}
	}
	maxFanOut := 0
	for _, n := range dependents {
		maxFanOut = max(maxFanOut, n)
	}
	if maxDepth < chainLen {
		t.Errorf("longest depends chain is %d layers, want >= %d", maxDepth, chainLen)
	}
	if maxFanIn < 10 {
		t.Errorf("largest fan-in is %d depends, want >= 10", maxFanIn)
	}
	if maxFanOut < 40 {
		t.Errorf("largest fan-out is %d dependents, want >= 40", maxFanOut)
	}
	for _, what := range []string{"deb", "rpm", "root.yml", "user.yml", "package.json", "Cargo.toml", "pixi.toml",
		"env", "path_append", "ports", "service", "route", "copr"} {
		if has[what] == 0 {
			t.Errorf("no layer has %s", what)
		}
	}
	if p.Layers["traefik"] == nil {
		t.Error("no traefik layer")
	}

	// And it generates.
	if err := Generate(dir, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// TestWriteProjectDeterministic checks that a seed fixes the project.
func TestWriteProjectDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	small := Scale{Images: 12, Layers: 60, Seed: 1}
	for dir, s := range map[string]Scale{a: small, b: small, c: {Images: 12, Layers: 60, Seed: 2}} {
		if err := WriteProject(dir, s); err != nil {
			t.Fatal(err)
		}
		if _, err := spec.Load(dir); err != nil {
			t.Fatalf("seed %d: %v", s.Seed, err)
		}
	}
	ta, tb, tc := tree(t, a), tree(t, b), tree(t, c)
	if len(ta) != len(tb) {
		t.Fatalf("same seed: %d files vs %d", len(ta), len(tb))
	}
	for rel, data := range ta {
		if !bytes.Equal(data, tb[rel]) {
			t.Errorf("same seed: %s differs", rel)
		}
	}
	if bytes.Equal(ta["images.yml"], tc["images.yml"]) && len(ta) == len(tc) {
		t.Error("different seeds wrote the same images.yml and file count")
	}
}

func TestWriteProjectTooSmall(t *testing.T) {
	if err := WriteProject(t.TempDir(), Scale{Images: 2, Layers: 5}); err == nil {
		t.Fatal("no error for a project below the minimum size")
	}
}

func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
