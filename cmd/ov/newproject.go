package main

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/overthink/ov/spec"
)

// starter is the project ov new project writes: one Debian image with a
// packages layer, a root.yml layer and a user.yml layer, each file with its
// schema line.
//
//go:embed all:starter
var starter embed.FS

// NewProjectCmd scaffolds a project.
type NewProjectCmd struct {
	Dir string `arg:"" optional:"" default:"." help:"Directory to create the project in (default: -C DIR, or the current directory)."`
}

func (c *NewProjectCmd) Help() string {
	return `Writes images.yml (image app on debian:bookworm) and layers/tools (apt
packages), layers/greeting (a root.yml that installs a command) and
layers/dotfiles (a user.yml, with depends and path_append). Every YAML file
starts with its yaml-language-server schema line. The result passes ov
validate and builds with ov build. Refuses to overwrite anything.`
}

func (c *NewProjectCmd) Run(g *Globals) error {
	dir := c.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(g.Dir, dir)
	}
	files, err := starterFiles()
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return userErrorf("%s already exists: ov new project writes only into a directory without images.yml and these layers", filepath.Join(dir, name))
		}
	}
	var written []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if err := writeNew(filepath.Join(dir, name), data); err != nil {
			for _, w := range written { // nothing half-written
				os.Remove(w)
			}
			return err
		}
		written = append(written, filepath.Join(dir, name))
	}
	fmt.Fprintf(g.Stderr, "created a project in %s: images.yml, layers/tools, layers/greeting, layers/dotfiles\nnext: ov -C %s validate, then ov -C %s build app --load\n", dir, c.Dir, c.Dir)
	return nil
}

// starterFiles are the starter's files by relative path, schema lines filled in.
func starterFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(starter, "starter", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := starter.ReadFile(p)
		if err != nil {
			return err
		}
		text := strings.NewReplacer("SCHEMA_IMAGES", spec.SchemaURL("images"), "SCHEMA_LAYER", spec.SchemaURL("layer")).Replace(string(data))
		files[strings.TrimPrefix(p, "starter/")] = []byte(text)
		return nil
	})
	return files, err
}

// writeNew creates path (and its directories) with data; it fails when the
// file exists.
func writeNew(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return userErrorf("%s already exists", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
