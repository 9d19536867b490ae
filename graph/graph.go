// Package graph draws an ov project as a picture: images with their bases,
// the layers each image lists, and the depends between layers; or one
// image's resolved layer order, with the layers its parents provide greyed.
// It renders Mermaid (GitHub and GitLab draw it in Markdown) or Graphviz
// dot. It is pure: a resolved spec.Project in, text out. Node ids are
// derived from names (which spec validates); every label is quoted and
// escaped, so no name or base reference can add a statement.
package graph

import (
	"fmt"
	"slices"
	"strings"

	"github.com/overthink/ov/spec"
)

// Format is an output syntax.
type Format string

const (
	Mermaid Format = "mermaid"
	Dot     Format = "dot"
)

// Formats lists the supported formats, the default first.
var Formats = []Format{Mermaid, Dot}

// kind is what a node stands for; it picks the shape and style.
type kind int

const (
	base        kind = iota // an external base image
	image                   // an image of images.yml
	layer                   // a layer
	parentLayer             // a layer a parent image installs (greyed)
)

type node struct {
	id, label string
	kind      kind
}

type edge struct {
	from, to string
	dashed   bool // depends (as opposed to base or order)
}

// graph is the format-neutral picture.
type graph struct {
	nodes []node
	edges []edge
	seen  map[string]bool
}

func (g *graph) node(id, label string, k kind) string {
	if g.seen == nil {
		g.seen = map[string]bool{}
	}
	if !g.seen[id] {
		g.seen[id] = true
		g.nodes = append(g.nodes, node{id, label, k})
	}
	return id
}

// edge adds an edge once; a depends edge that an order or base edge already
// draws is left out.
func (g *graph) edge(from, to string, dashed bool) {
	if dashed && slices.Contains(g.edges, edge{from, to, false}) {
		return
	}
	if !dashed {
		g.edges = slices.DeleteFunc(g.edges, func(e edge) bool { return e == edge{from, to, true} })
	}
	if e := (edge{from, to, dashed}); !slices.Contains(g.edges, e) {
		g.edges = append(g.edges, e)
	}
}

// Project draws every enabled image, in build order, with its base (an
// external reference or its parent image) and the layers it installs itself
// (its resolved order, without what its parents install), and each layer's
// depends.
func Project(p *spec.Project, f Format) (string, error) {
	var g graph
	bases := map[string]string{}
	for _, name := range p.Order {
		img := p.Image(name)
		id := g.node("img_"+ident(name), name, image)
		if img.Parent != "" {
			g.edge("img_"+ident(img.Parent), id, false)
		} else {
			if bases[img.Base] == "" {
				bases[img.Base] = fmt.Sprintf("base_%d", len(bases)+1)
			}
			g.edge(g.node(bases[img.Base], img.Base, base), id, false)
		}
		for _, l := range img.Install {
			g.edge(id, layerNode(&g, p, l, layer), false)
		}
	}
	return render(&g, f)
}

// Image draws img's resolved layer order from its external base: the layers
// its parents install (greyed), then its own, each after the one before,
// with depends as dashed edges.
func Image(p *spec.Project, img *spec.Image, f Format) (string, error) {
	var g graph
	chain := p.Chain(img)
	prev := g.node("base_1", chain[0].Base, base)
	for _, im := range chain {
		k := layer
		if im != img {
			k = parentLayer
		}
		for _, l := range im.Install {
			id := layerNode(&g, p, l, k)
			g.edge(prev, id, false)
			prev = id
		}
	}
	return render(&g, f)
}

// layerNode adds a layer and its depends (and theirs) to g.
func layerNode(g *graph, p *spec.Project, name string, k kind) string {
	id := "layer_" + ident(name)
	if g.seen[id] {
		return id
	}
	g.node(id, name, k)
	if l := p.Layer(name); l != nil {
		for _, d := range l.Depends {
			g.edge(layerNode(g, p, d, k), id, true)
		}
	}
	return id
}

// ident maps a validated name (lowercase letters, digits, '-', '_', '.')
// to an id both formats accept unquoted.
func ident(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "_%x_", r)
		}
	}
	return b.String()
}

func render(g *graph, f Format) (string, error) {
	switch f {
	case Mermaid, "":
		return mermaid(g), nil
	case Dot:
		return dot(g), nil
	}
	return "", fmt.Errorf("unknown graph format %q (want %s or %s)", f, Mermaid, Dot)
}

func mermaid(g *graph) string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	shapes := map[kind][2]string{base: {"[(", ")]"}, image: {"[[", "]]"}, layer: {"(", ")"}, parentLayer: {"(", ")"}}
	for _, n := range g.nodes {
		s := shapes[n.kind]
		fmt.Fprintf(&b, "  %s%s\"%s\"%s\n", n.id, s[0], mermaidText(n.label), s[1])
	}
	for _, e := range g.edges {
		arrow := "-->"
		if e.dashed {
			arrow = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s %s\n", e.from, arrow, e.to)
	}
	var parents []string
	for _, n := range g.nodes {
		if n.kind == parentLayer {
			parents = append(parents, n.id)
		}
	}
	if len(parents) > 0 {
		b.WriteString("  classDef parent fill:#eee,stroke:#999,color:#777\n")
		fmt.Fprintf(&b, "  class %s parent\n", strings.Join(parents, ","))
	}
	return b.String()
}

// mermaidText escapes a label for a quoted Mermaid string: entity codes for
// the quote and the characters Mermaid would read as markup.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", " ", "\r", " ").Replace(s)
}

func dot(g *graph) string {
	var b strings.Builder
	b.WriteString("digraph ov {\n  rankdir=TB;\n")
	attrs := map[kind]string{
		base:        `shape=cylinder`,
		image:       `shape=box, style=bold`,
		layer:       `shape=box, style=rounded`,
		parentLayer: `shape=box, style="rounded,filled", fillcolor="#eeeeee", fontcolor="#777777", color="#999999"`,
	}
	for _, n := range g.nodes {
		fmt.Fprintf(&b, "  %s [label=%s, %s];\n", n.id, dotText(n.label), attrs[n.kind])
	}
	for _, e := range g.edges {
		style := ""
		if e.dashed {
			style = " [style=dashed]"
		}
		fmt.Fprintf(&b, "  %s -> %s%s;\n", e.from, e.to, style)
	}
	b.WriteString("}\n")
	return b.String()
}

// dotText quotes a label as a dot string.
func dotText(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", " ", "\r", " ").Replace(s) + `"`
}
