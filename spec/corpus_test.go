package spec

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*/want.txt from the current output")

// TestInvalidCorpus loads every project under testdata/invalid and compares
// the complete error output with the case's want.txt.
func TestInvalidCorpus(t *testing.T) {
	dirs, err := filepath.Glob("testdata/invalid/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 40 {
		t.Fatalf("corpus has %d cases, want at least 40", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, err := Load(dir)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load: got %v, want validation errors", err)
			}
			for _, e := range errs {
				if e.Pos.File == "" {
					t.Errorf("error without a file: %v", e)
				}
			}
			got := err.Error() + "\n"
			wantFile := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors differ\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestShippedLibrary loads the repository's own images.yml and layers.
func TestShippedLibrary(t *testing.T) {
	p, err := Load("..")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"fedora":      "pixi python nodejs rust supervisord",
		"ubuntu":      "pixi python nodejs rust supervisord",
		"fedora-test": "traefik testapi",
	}
	for name, layers := range want {
		if got := strings.Join(p.Image(name).Install, " "); got != layers {
			t.Errorf("%s installs %q, want %q", name, got, layers)
		}
	}
	if got := strings.Join(p.Order, " "); got != "fedora ubuntu fedora-test" {
		t.Errorf("order %q", got)
	}
	if p.Image("ubuntu").Pkg != "deb" || p.Image("fedora-test").Pkg != "rpm" {
		t.Errorf("pkg: ubuntu %q, fedora-test %q", p.Image("ubuntu").Pkg, p.Image("fedora-test").Pkg)
	}
	for _, name := range []string{"pixi", "python", "nodejs", "rust", "supervisord", "traefik", "testapi"} {
		if p.Layer(name) == nil {
			t.Errorf("layer %s missing", name)
		}
	}
	tr := p.Layer("traefik")
	if !slices.Contains(tr.Files(), "root.yml") || tr.Service == "" || len(tr.Ports) != 2 {
		t.Errorf("traefik layer: %+v", tr)
	}
	ta := p.Layer("testapi")
	if ta.Route == nil || *ta.Route != (Route{Host: "testapi.localhost", Port: 9090}) || !slices.Contains(ta.Files(), "user.yml") || !slices.Contains(ta.Files(), "pixi.toml") {
		t.Errorf("testapi layer: %+v", ta)
	}
}
