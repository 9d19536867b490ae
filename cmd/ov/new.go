package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/overthink/ov/spec"
)

// NewCmd scaffolds project parts.
type NewCmd struct {
	Layer   NewLayerCmd   `cmd:"" help:"Create layers/<name>/ with a commented layer.yml and a root.yml install task."`
	Project NewProjectCmd `cmd:"" help:"Create a starter project: images.yml with one Debian image and three layers."`
}

// NewLayerCmd scaffolds a layer.
type NewLayerCmd struct {
	Name string `arg:"" help:"Layer name: lowercase letters, digits and single hyphens (my-layer)."`
}

func (c *NewLayerCmd) Help() string {
	return `Creates layers/<name>/layer.yml (every key commented out, with examples) and
layers/<name>/root.yml (a Taskfile with the install task the build runs).
The result passes ov validate. Refuses an existing directory. Next: edit the
files and add the layer to an image in images.yml.`
}

func (c *NewLayerCmd) Run(g *Globals) error {
	if !spec.ValidName(c.Name) {
		return userErrorf("invalid layer name %q: use lowercase letters, digits and single hyphens (like \"my-layer\")", c.Name)
	}
	if _, err := os.Stat(filepath.Join(g.Dir, "images.yml")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return userErrorf("%s is not an ov project (no images.yml); pass -C DIR", g.Dir)
		}
		return err
	}
	layers := filepath.Join(g.Dir, "layers")
	target := filepath.Join(layers, c.Name)
	if _, err := os.Lstat(target); err == nil {
		return userErrorf("layers/%s already exists", c.Name)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := checkInside(g.Dir, "layers"); err != nil {
		return err
	}
	if err := os.MkdirAll(layers, 0o755); err != nil {
		return err
	}
	// Write into a hidden directory (ignored by ov) and rename it into
	// place, so that a failure leaves nothing half-written.
	tmp, err := os.MkdirTemp(layers, ".new-"+c.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	files := map[string]string{
		"layer.yml": "# yaml-language-server: $schema=" + spec.SchemaURL("layer") + "\n" + layerTemplate,
		"root.yml":  rootTemplate,
	}
	for name, text := range files {
		text = strings.ReplaceAll(text, "ENVNAME", strings.ToUpper(strings.ReplaceAll(c.Name, "-", "_")))
		text = strings.ReplaceAll(text, "NAME", c.Name)
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "created layers/%s/ (layer.yml, root.yml)\nnext: edit them, then add %q to an image's layers in images.yml\n", c.Name, c.Name)
	return nil
}

const layerTemplate = `# layers/NAME/layer.yml: what the NAME layer needs besides its install
# files. Every key is optional: uncomment what the layer uses.

# Layers installed before this one (resolved transitively).
# depends:
#   - python

# System packages, installed as root: rpm for pkg: rpm images, deb for
# pkg: deb images.
# rpm:
#   packages:
#     - htop
#   copr:                   # COPR repositories, enabled only for this install
#     - owner/project
#   repos:                  # external repositories, enabled only for this install
#     - name: example
#       url: https://example.com/example.repo
#       gpgkey: https://example.com/RPM-GPG-KEY-example
#   exclude:
#     - "*-devel"
#   options:
#     - --setopt=install_weak_deps=False
# deb:
#   packages:
#     - htop

# Environment variables (a later layer wins). ~ and $HOME are the user's home.
# PATH cannot be set here: use path_append.
# env:
#   ENVNAME_HOME: "~/.NAME"

# Directories appended to PATH.
# path_append:
#   - "~/.NAME/bin"

# Ports the image exposes.
# ports:
#   - 8080

# Named volumes for data kept across containers (models, caches): ov shell,
# ov start and ov pod mount each as ov-<image>-<name>. ~ and $HOME are the
# user's home.
# volumes:
#   - name: data
#     path: "~/.NAME"

# A traefik route to the layer's service (the image needs the traefik layer).
# route:
#   host: NAME.localhost
#   port: 8080

# A supervisord program, run by ov start and ov pod.
# service: |
#   [program:NAME]
#   command=NAME serve --port 8080
#   autostart=true
#   autorestart=true
`

const rootTemplate = `# layers/NAME/root.yml: runs as root, in a directory holding this layer's
# files. One task, install, idempotent. System packages belong in layer.yml;
# use this for downloads (detect the architecture with uname -m) and system
# configuration. User-level steps go in user.yml.
version: '3'

tasks:
  install:
    desc: Install NAME
    cmds:
      - echo "NAME: nothing to install yet"
`

// checkInside refuses to write below rel when a symbolic link takes it
// outside the project (os.Root refuses such a path).
func checkInside(dir, rel string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err := root.Stat(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return userErrorf("%s: %v (ov writes only inside the project)", rel, errors.Unwrap(err))
	}
	return nil
}
