package main

import "fmt"

// ValidateCmd checks the project.
type ValidateCmd struct{}

func (c *ValidateCmd) Help() string {
	return `Reads images.yml and every layers/<name>/ and checks all rules: known keys
and types, layer names, install files, dependencies (no unknown layers, no
cycles), inheritance, ports, routes, platforms, package names. Prints every
problem as file:line: message and exits 1, or prints "ok: N images, M layers".
Disabled images (enabled: false) are not checked beyond their syntax.`
}

func (c *ValidateCmd) Run(g *Globals) error {
	collectLess()
	p, err := loadProject(g)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "ok: %d images, %d layers\n", len(p.Order), len(p.Layers))
	return nil
}
