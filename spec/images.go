package spec

import (
	"gopkg.in/yaml.v3"
)

var (
	imageKeys    = []string{"enabled", "base", "bootc", "platforms", "tag", "registry", "pkg", "layers", "ports", "user", "uid", "gid", "merge"}
	defaultsKeys = []string{"enabled", "base", "bootc", "platforms", "tag", "registry", "pkg", "ports", "user", "uid", "gid", "merge"}
	mergeKeys    = []string{"auto", "max_mb"}
)

// Fallbacks: the values of settings that neither the image nor defaults set.
const (
	DefaultBase  = "quay.io/fedora/fedora:43"
	DefaultTag   = "auto"
	DefaultPkg   = "rpm"
	DefaultUser  = "user"
	DefaultUID   = 1000
	DefaultGID   = 1000
	DefaultMaxMB = 128
)

// DefaultPlatforms is the platforms fallback.
var DefaultPlatforms = []string{"linux/amd64", "linux/arm64"}

// opt is a setting as written: set only when the key is present and not
// null, so that 0, false and "" are real values.
type opt[T any] struct {
	v   T
	set bool
	pos Pos
}

func some[T any](v T, pos Pos) opt[T] { return opt[T]{v: v, set: true, pos: pos} }

// settings are the inheritable keys of an image or of defaults.
type settings struct {
	enabled, bootc           opt[bool]
	base, tag, registry, pkg opt[string]
	user                     opt[string]
	platforms, ports         opt[[]item[string]]
	uid, gid                 opt[int]
	merge                    opt[bool] // merge: present (v unused)
	mergeAuto                opt[bool]
	mergeMaxMB               opt[int]
}

// rawImage is an images.yml entry as written.
type rawImage struct {
	name   string
	pos    Pos
	s      settings
	layers opt[[]item[string]]
}

// rawImages is images.yml as written.
type rawImages struct {
	defaults settings
	images   []*rawImage // in written order
}

// parseImages reads images.yml, reporting structure and type errors. Value
// checks (pkg, platforms, ...) happen later, only for settings that apply to
// an enabled image.
func parseImages(d *doc, data []byte) *rawImages {
	out := &rawImages{}
	root, ok := d.parse(data)
	if root == nil {
		if ok {
			d.errs.add(Pos{File: d.file}, "no images defined (add an images: section)")
		}
		return out
	}
	top := d.mapping(root, "", []string{"defaults", "images"})
	if f, ok := top["defaults"]; ok {
		out.defaults = parseSettings(d, f.key, f.val, "defaults", defaultsKeys, nil)
	}
	f, ok := top["images"]
	if !ok {
		if root.Kind == yaml.MappingNode {
			d.errf(root, "no images defined (add an images: section)")
		}
		return out
	}
	n := f.val
	if n.Kind != yaml.MappingNode {
		d.errf(n, "images: expected a mapping of image names, got %s", describe(n))
		return out
	}
	if len(n.Content) == 0 {
		d.errf(f.key, "no images defined")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "images: names must be strings, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errf(k, "duplicate image %q (first at line %d)", clip(k.Value), first)
			continue
		}
		seen[k.Value] = k.Line
		if err := CheckName("image", k.Value); err != nil {
			d.errf(k, "%v", err)
			continue
		}
		img := &rawImage{name: k.Value, pos: d.pos(k)}
		img.s = parseSettings(d, k, v, "image "+quote(k.Value), imageKeys, &img.layers)
		out.images = append(out.images, img)
	}
	return out
}

func quote(s string) string { return `"` + s + `"` }

var defaultsHints = map[string]string{
	"layers": "defaults: layers are not inherited; list them per image",
}

// parseSettings reads the inheritable keys of an image (layers non-nil) or
// of defaults. key is the node naming the section, for "required" errors.
func parseSettings(d *doc, key, n *yaml.Node, where string, known []string, layers *opt[[]item[string]]) settings {
	var s settings
	f := d.mapping(n, where, known, defaultsHints)
	str := func(key string, o *opt[string]) {
		if v, ok := f[key]; ok {
			if x, ok := d.str(key, v.val); ok {
				*o = some(x, d.pos(v.val))
			}
		}
	}
	boolean := func(key string, o *opt[bool]) {
		if v, ok := f[key]; ok {
			if x, ok := d.boolean(key, v.val); ok {
				*o = some(x, d.pos(v.val))
			}
		}
	}
	integer := func(key string, o *opt[int]) {
		if v, ok := f[key]; ok {
			if x, ok := d.integer(key, v.val); ok {
				*o = some(x, d.pos(v.val))
			}
		}
	}
	strs := func(key string, o *opt[[]item[string]]) {
		if v, ok := f[key]; ok {
			if x, ok := list(d, key, v.val, d.str); ok {
				*o = some(x, d.pos(v.val))
			}
		}
	}
	boolean("enabled", &s.enabled)
	str("base", &s.base)
	boolean("bootc", &s.bootc)
	strs("platforms", &s.platforms)
	str("tag", &s.tag)
	str("registry", &s.registry)
	str("pkg", &s.pkg)
	strs("ports", &s.ports)
	str("user", &s.user)
	integer("uid", &s.uid)
	integer("gid", &s.gid)
	if v, ok := f["merge"]; ok {
		mf := d.mapping(v.val, "merge", mergeKeys)
		if v.val.Kind == yaml.MappingNode {
			s.merge = some(true, d.pos(v.val))
			if a, ok := mf["auto"]; ok {
				if x, ok := d.boolean("merge.auto", a.val); ok {
					s.mergeAuto = some(x, d.pos(a.val))
				}
			}
			if m, ok := mf["max_mb"]; ok {
				if x, ok := d.integer("merge.max_mb", m.val); ok {
					s.mergeMaxMB = some(x, d.pos(m.val))
				}
			}
		}
	}
	if layers != nil {
		if v, ok := f["layers"]; ok {
			if x, ok := list(d, "layers", v.val, d.str); ok {
				*layers = some(x, d.pos(v.key))
			}
		} else if isNull(n) || n.Kind == yaml.MappingNode {
			d.errf(key, "%s: layers is required", where)
		}
	}
	return s
}
