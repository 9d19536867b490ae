package main

import (
	"github.com/overthink/ov/spec"
)

// SchemaCmd prints the JSON Schema of images.yml or layer.yml.
type SchemaCmd struct {
	File string `arg:"" enum:"images,layer" help:"images (images.yml) or layer (layer.yml)."`
}

func (c *SchemaCmd) Help() string {
	return `Editors check and complete images.yml and layer.yml with it (YAML language
server: VS Code's YAML extension, Neovim's yamlls). Point a file at it with a
first line such as

  # yaml-language-server: $schema=` + spec.SchemaURL("layer") + `

or, offline, write it next to the project and use a relative path:

  ov schema layer > layer.schema.json`
}

func (c *SchemaCmd) Run(g *Globals) error {
	b, err := spec.Schema(c.File)
	if err != nil {
		return err
	}
	_, err = g.Stdout.Write(b)
	return err
}
