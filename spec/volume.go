package spec

import (
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// Volume is a named volume a layer declares for the data it keeps across
// containers (models, caches): ov shell, ov start and ov pod mount it at
// Path in every image whose chain installs the layer.
type Volume struct {
	Name string // a layer-like name; the engine's volume is ov-<image>-<name>
	Path string // as written: absolute, or under ~ or $HOME (the image's home)
}

var volumeKeys = []string{"name", "path"}

// homeProbe stands for the image's home when a volume path is checked
// without one: any plain absolute directory gives the same verdict.
const homeProbe = "/home/user"

// parseVolumes reads layer.yml's volumes: a list of {name, path}.
func parseVolumes(d *doc, n *yaml.Node) []Volume {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "volumes: expected a list of {name, path}, got %s", describe(n))
		return nil
	}
	var out []Volume
	seen := map[string]bool{}
	for _, e := range n.Content {
		e = deref(e)
		f := d.mapping(e, "volumes entry", volumeKeys)
		if e.Kind != yaml.MappingNode {
			if isNull(e) {
				d.errf(e, "volumes entry: expected a mapping, got null")
			}
			continue
		}
		name, okName := volumeField(d, e, f, "name")
		p, okPath := volumeField(d, e, f, "path")
		if okName {
			if err := CheckName("volume", name); err != nil {
				d.errf(f["name"].val, "volumes: %v", err)
				okName = false
			} else if seen[name] {
				d.errf(f["name"].val, "volumes: volume %q is listed twice", name)
				okName = false
			}
			seen[name] = true
		}
		if okPath {
			if err := CheckVolumePath(p, homeProbe); err != nil {
				d.errf(f["path"].val, "volumes: %v", err)
				okPath = false
			}
		}
		if okName && okPath {
			out = append(out, Volume{Name: name, Path: p})
		}
	}
	return out
}

// volumeField reads a required string key of a volumes entry.
func volumeField(d *doc, entry *yaml.Node, f map[string]field, key string) (string, bool) {
	v, ok := f[key]
	if !ok {
		d.errf(entry, "volumes entry: %s is required", key)
		return "", false
	}
	return d.str("volumes "+key, v.val)
}

// CheckVolumePath checks a volume path as written, with home standing for
// the image's home: absolute once ~ and $HOME are expanded, plain (no "."
// or ".." parts), not the root or /workspace (ov mounts the workspace
// there), and without the ':' and ',' that separate the fields of a mount
// option, other variables or control characters.
func CheckVolumePath(p, home string) error {
	abs := ExpandHome(p, home)
	switch {
	case strings.HasPrefix(p, "~") && p != "~" && !strings.HasPrefix(p, "~/"):
		return fmt.Errorf("path %q: only ~ (the image user's home) is expanded, not ~user", clip(p))
	case !path.IsAbs(abs):
		return fmt.Errorf("path %q is not absolute: start it with /, ~/ or $HOME/", clip(p))
	case strings.Contains(abs, "$"):
		return fmt.Errorf("path %q: only ~ and $HOME are expanded, no other variables", clip(p))
	case strings.ContainsAny(abs, ":,") || strings.ContainsFunc(abs, isControl):
		return fmt.Errorf("path %q must not contain ':', ',' or control characters", clip(p))
	case path.Clean(abs) != strings.TrimSuffix(abs, "/") && abs != "/":
		return fmt.Errorf("path %q is not a plain path (no '.', '..' or '//' parts)", clip(p))
	case abs == "/" || path.Clean(abs) == "/workspace":
		return fmt.Errorf("path %q: a volume cannot be mounted at %s", clip(p), path.Clean(abs))
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Volumes returns the volumes of img: those of the layers its whole chain
// installs, the root image's first, in install order. When two layers
// declare the same name, the first declaration wins.
func (p *Project) Volumes(img *Image) []Volume {
	var out []Volume
	seen := map[string]bool{}
	for _, ci := range p.Chain(img) {
		for _, l := range p.LayersOf(ci) {
			if l == nil {
				continue
			}
			for _, v := range l.Volumes {
				if !seen[v.Name] {
					seen[v.Name] = true
					out = append(out, v)
				}
			}
		}
	}
	return out
}
