package graph_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overthink/ov/graph"
	"github.com/overthink/ov/spec"
)

var update = flag.Bool("update", false, "rewrite graph/testdata/*.golden")

func load(t *testing.T, dir string) *spec.Project {
	t.Helper()
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n%s", name, path, got)
	}
}

func TestGoldens(t *testing.T) {
	for _, c := range []struct{ name, dir, image string }{
		{"hello", "../examples/hello", ""},
		{"hello-child", "../examples/hello", "hello-child"},
		{"family", "testdata/family", ""},
		{"family-dev-extra", "testdata/family", "dev-extra"},
	} {
		p := load(t, c.dir)
		for _, f := range graph.Formats {
			t.Run(c.name+"."+string(f), func(t *testing.T) {
				var out string
				var err error
				if c.image == "" {
					out, err = graph.Project(p, f)
				} else {
					out, err = graph.Image(p, p.Image(c.image), f)
				}
				if err != nil {
					t.Fatal(err)
				}
				golden(t, c.name+"."+string(f), out)
			})
		}
	}
}

// TestFamilyShape checks what the goldens show, so that a regenerated
// golden cannot silently lose it.
func TestFamilyShape(t *testing.T) {
	p := load(t, "testdata/family")
	out, err := graph.Project(p, graph.Mermaid)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"img_core --> img_dev\n",              // parent image edge
		"base_1 --> img_core\n",               // external base
		"img_dev --> layer_lang\n",            // a depends pulled in
		"layer_app -.-> layer_extra\n",        // depends, dashed
		"img_other --> layer_base_2d_tools\n", // same layer, other image
	} {
		if !strings.Contains(out, want) {
			t.Errorf("project graph lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "img_off") {
		t.Errorf("a disabled image is drawn:\n%s", out)
	}
	one, err := graph.Image(p, p.Image("dev-extra"), graph.Mermaid)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(one, "class layer_base_2d_tools,layer_lang,layer_app parent\n") {
		t.Errorf("parents' layers are not greyed:\n%s", one)
	}
	if strings.Contains(one, "layer_lang -.-> layer_app") {
		t.Errorf("a depends edge doubles an order edge:\n%s", one)
	}
}

// TestLabelsCannotAddStatements: a base reference is user text; whatever it
// holds stays inside its label in both formats.
func TestLabelsCannotAddStatements(t *testing.T) {
	p := load(t, "testdata/family")
	img := *p.Image("other")
	img.Base = "evil\"]\n  click base_1 \"javascript:alert(1)\"\n  x[\"<b>"
	p.Images["other"] = &img
	for _, f := range graph.Formats {
		out, err := graph.Project(p, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "click") || strings.HasPrefix(strings.TrimSpace(line), "x[") {
				t.Errorf("%s: a label added a statement: %q", f, line)
			}
		}
		if f == graph.Dot && !strings.Contains(out, `label="evil\"]`) {
			t.Errorf("dot label not escaped:\n%s", out)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := graph.Project(load(t, "testdata/family"), "svg"); err == nil || !strings.Contains(err.Error(), `unknown graph format "svg"`) {
		t.Errorf("err = %v", err)
	}
}

// TestREADMEShowsHello keeps README's picture of examples/hello current.
func TestREADMEShowsHello(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out, err := graph.Project(load(t, "../examples/hello"), graph.Mermaid)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```mermaid\n"+out+"```\n") {
		t.Errorf("README.md's mermaid block is not ov graph of examples/hello:\n%s", out)
	}
}
