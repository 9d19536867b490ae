package main

import (
	"fmt"

	"github.com/overthink/ov/pod"
	"github.com/overthink/ov/spec"
)

// ListCmd lists parts of the project, one per line on stdout.
type ListCmd struct {
	Images   ListImagesCmd   `cmd:"" help:"Enabled images, in images.yml order."`
	Layers   ListLayersCmd   `cmd:"" help:"Layers (directories under layers/), sorted."`
	Targets  ListTargetsCmd  `cmd:"" help:"Build targets: enabled images in build order (base images first)."`
	Services ListServicesCmd `cmd:"" help:"Layers with a supervisord service, sorted."`
	Routes   ListRoutesCmd   `cmd:"" help:"Layers with a traefik route, as: layer host port."`
	Volumes  ListVolumesCmd  `cmd:"" help:"Named volumes of enabled images (from their layers, parents included), as: image volume path."`
}

type (
	ListImagesCmd   struct{}
	ListLayersCmd   struct{}
	ListTargetsCmd  struct{}
	ListServicesCmd struct{}
	ListRoutesCmd   struct{}
	ListVolumesCmd  struct{}
)

// listLines loads the project and prints the lines lines returns.
func listLines(g *Globals, lines func(p *spec.Project) []string) error {
	p, err := loadProject(g)
	if err != nil {
		return err
	}
	for _, l := range lines(p) {
		if _, err := fmt.Fprintln(g.Stdout, l); err != nil {
			return err
		}
	}
	return nil
}

func (c *ListImagesCmd) Run(g *Globals) error {
	return listLines(g, func(p *spec.Project) (out []string) {
		for _, name := range p.Names {
			if p.Image(name).Enabled {
				out = append(out, name)
			}
		}
		return out
	})
}

func (c *ListLayersCmd) Run(g *Globals) error {
	return listLines(g, (*spec.Project).LayerNames)
}

func (c *ListTargetsCmd) Run(g *Globals) error {
	return listLines(g, func(p *spec.Project) []string { return p.Order })
}

func (c *ListServicesCmd) Run(g *Globals) error {
	return listLines(g, func(p *spec.Project) (out []string) {
		for _, name := range p.LayerNames() {
			if p.Layer(name).Service != "" {
				out = append(out, name)
			}
		}
		return out
	})
}

func (c *ListRoutesCmd) Run(g *Globals) error {
	return listLines(g, func(p *spec.Project) (out []string) {
		for _, name := range p.LayerNames() {
			if r := p.Layer(name).Route; r != nil {
				out = append(out, fmt.Sprintf("%s %s %d", name, r.Host, r.Port))
			}
		}
		return out
	})
}

func (c *ListVolumesCmd) Run(g *Globals) error {
	p, err := loadProject(g)
	if err != nil {
		return err
	}
	users, err := userLookup(false)
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	for _, name := range p.Names {
		if !p.Image(name).Enabled {
			continue
		}
		volumes, err := imageVolumes(ctx, p, p.Image(name), users)
		if err != nil {
			return err
		}
		for _, v := range volumes {
			if _, err := fmt.Fprintf(g.Stdout, "%s %s %s\n", name, pod.VolumeName(name, v.Name), v.Path); err != nil {
				return err
			}
		}
	}
	return nil
}
