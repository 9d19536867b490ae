package main

import (
	"fmt"

	"github.com/overthink/ov/graph"
)

// GraphCmd prints the project, or one image's layer order, as a graph.
type GraphCmd struct {
	Image  string `placeholder:"IMAGE" predictor:"image" help:"Draw IMAGE's resolved layer order instead, with the layers its parent images provide greyed."`
	Format string `short:"f" default:"mermaid" enum:"mermaid,dot" help:"mermaid (renders in GitHub/GitLab Markdown) or dot (Graphviz)."`
}

func (c *GraphCmd) Help() string {
	return `Without --image: every enabled image with its base (an external image or
its parent image), the layers it lists, and each layer's depends (dashed).

Examples:
  ov graph > project.mmd
  ov graph --image app --format dot | dot -Tsvg > app.svg`
}

func (c *GraphCmd) Run(g *Globals) error {
	p, err := loadProject(g)
	if err != nil {
		return err
	}
	var out string
	if c.Image == "" {
		out, err = graph.Project(p, graph.Format(c.Format))
	} else {
		img, ferr := findImage(p, c.Image)
		if ferr != nil {
			return ferr
		}
		out, err = graph.Image(p, img, graph.Format(c.Format))
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(g.Stdout, out)
	return err
}
