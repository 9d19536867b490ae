package spec

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// JSON Schemas (draft 2020-12) for images.yml and layer.yml, for editors
// (yaml-language-server): completion, hover text and checks as you type.
// Every object is built from the parser's own key list (imageKeys,
// layerKeys, ...), and building fails when a key has no description or a
// description no key, so the schema and the parser cannot drift apart. The
// schema checks shape (keys, types, enums, patterns); ov validate checks
// everything else (depends, cycles, files), with file:line.

// SchemaNames are the files Schema describes.
var SchemaNames = []string{"images", "layer"}

// SchemaBaseURL is where the schema files of the ov repository are served;
// the `$schema=` lines ov writes point there.
const SchemaBaseURL = "https://raw.githubusercontent.com/overthink/ov/main/schema/"

// SchemaURL is the URL of the schema of images.yml ("images") or layer.yml
// ("layer").
func SchemaURL(name string) string { return SchemaBaseURL + name + ".schema.json" }

// Schema returns the JSON Schema of images.yml ("images") or layer.yml
// ("layer"), indented, with a final newline.
func Schema(name string) ([]byte, error) {
	var b schemaBuilder
	var s js
	switch name {
	case "images":
		s = b.images()
	case "layer":
		s = b.layer()
	default:
		return nil, fmt.Errorf("unknown schema %q (want images or layer)", name)
	}
	if b.err != nil {
		return nil, b.err
	}
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = SchemaURL(name)
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// js is one JSON Schema object.
type js = map[string]any

type schemaBuilder struct{ err error }

// object is a mapping with exactly the parser's keys: props must describe
// each key of keys and nothing else. Null is allowed (the parser reads a
// null value as unset).
func (b *schemaBuilder) object(where string, keys []string, desc string, props map[string]js) js {
	if got, want := slices.Sorted(maps.Keys(props)), slices.Sorted(slices.Values(keys)); !slices.Equal(got, want) && b.err == nil {
		b.err = fmt.Errorf("schema of %s describes keys %v, the parser knows %v", where, got, want)
	}
	p := make(map[string]any, len(props))
	for k, v := range props {
		p[k] = v
	}
	return js{"type": []string{"object", "null"}, "description": desc, "properties": p, "additionalProperties": false}
}

// scalar is what the parser reads as a string: any scalar keeps its text.
func scalar(desc string) js {
	return js{"type": []string{"string", "number", "boolean", "null"}, "description": desc}
}

func str(desc string) js     { return js{"type": []string{"string", "null"}, "description": desc} }
func boolean(desc string) js { return js{"type": []string{"boolean", "null"}, "description": desc} }

func integer(desc string, min, max int) js {
	s := js{"type": []string{"integer", "null"}, "description": desc, "minimum": min}
	if max > 0 {
		s["maximum"] = max
	}
	return s
}

func listOf(desc string, item js) js {
	return js{"type": []string{"array", "null"}, "description": desc, "items": item}
}

const namePattern = `^[a-z0-9]+(-[a-z0-9]+)*$`

func name(desc string) js { return js{"type": "string", "pattern": namePattern, "description": desc} }

func (b *schemaBuilder) settings(where string, keys []string) map[string]js {
	props := map[string]js{
		"enabled": boolean("false skips the image in generate, build, validate and list. Default true."),
		"base":    scalar("External image reference (\"debian:bookworm\", \"quay.io/fedora/fedora:43\") or the name of another image in images.yml, which then builds first. Default " + DefaultBase + "."),
		"bootc":   boolean("Adds `bootc container lint` (run as root) and enables disk image builds. Default false."),
		"platforms": listOf("Target platforms. A child image inherits its parent's unless it narrows them. Default linux/amd64 and linux/arm64.",
			js{"type": "string", "enum": []string{"linux/amd64", "linux/arm64"}}),
		"tag": js{"type": []string{"string", "number", "null"}, "description": "Image tag: \"auto\" (CalVer YYYY.DDD.HHMM plus latest), \"nightly\", or a version such as \"1.2.3\". `--tag` replaces auto's CalVer. Default auto.",
			"examples": []string{"auto", "nightly", "1.2.3"}},
		"registry": str("Registry prefix, e.g. ghcr.io/org: images are tagged <registry>/<name>:<tag>. Default none."),
		"pkg":      js{"type": []string{"string", "null"}, "enum": []any{"rpm", "deb", nil}, "description": "System package manager of the base: rpm (dnf) or deb (apt). A child inherits its parent's. Default rpm."},
		"ports": listOf("Runtime port mappings for ov shell/start/pod: \"port\" or \"host:container\".",
			js{"type": []string{"string", "integer"}, "pattern": `^[1-9][0-9]{0,4}(:[1-9][0-9]{0,4})?$`}),
		"user": scalar("Username for non-root steps. A child inherits its parent's user, uid and gid. Default user (or the base image's account at uid)."),
		"uid":  integer("User ID for non-root steps. Default 1000.", 0, 0),
		"gid":  integer("Group ID of the user. Default 1000.", 0, 0),
		"merge": b.object(where+".merge", mergeKeys, "Layer merge settings for ov merge and ov build --merge.", map[string]js{
			"auto":   boolean("Merge this image's small layers automatically after builds (ov merge --all, ov build). Default false."),
			"max_mb": integer("Largest merged layer, in MB. Default 128.", 1, 0),
		}),
		"layers": listOf("Layers to install, in order (depends are pulled in before). Not inherited.", name("A layer: a directory under layers/.")),
	}
	out := map[string]js{}
	for _, k := range keys {
		if p, ok := props[k]; ok {
			out[k] = p
		}
	}
	return out
}

func (b *schemaBuilder) images() js {
	image := b.object("an image", imageKeys, "An image: a build target.", b.settings("an image", imageKeys))
	defaults := b.object("defaults", defaultsKeys, "Settings every image inherits unless it sets them (image -> defaults -> fallback).", b.settings("defaults", defaultsKeys))
	top := b.object("images.yml", []string{"defaults", "images"}, "ov images.yml: the images of a project and their defaults.", map[string]js{
		"defaults": defaults,
		"images": js{"type": []string{"object", "null"}, "description": "The images, by name (lowercase letters, digits, single hyphens).",
			"propertyNames": js{"pattern": namePattern}, "additionalProperties": image},
	})
	top["type"] = "object"
	return top
}

func (b *schemaBuilder) layer() js {
	pkgs := func(what string) js {
		return listOf(what+" packages to install.", js{"type": []string{"string", "number"}})
	}
	top := b.object("layer.yml", layerKeys, "ov layer.yml: what a layer needs besides its install files.", map[string]js{
		"depends":     listOf("Layers installed before this one (transitively, topologically sorted).", name("A layer name.")),
		"env":         js{"type": []string{"object", "null"}, "description": "Environment variables (ENV in the image). ~ and $HOME expand to the image user's home. PATH is not allowed: use path_append.", "additionalProperties": scalar("The value."), "propertyNames": js{"pattern": `^[A-Za-z_][A-Za-z0-9_]*$`, "not": js{"const": "PATH"}}},
		"path_append": listOf("Directories appended to PATH, accumulated across layers. ~ and $HOME expand to the home.", scalar("A directory.")),
		"ports":       listOf("Ports the layer's service listens on (EXPOSE).", js{"type": "integer", "minimum": 1, "maximum": 65535}),
		"route": b.object("route", routeKeys, "A traefik route to this layer's service (the image needs the traefik layer).", map[string]js{
			"host": str("Host name routed to the port, e.g. app.localhost."),
			"port": integer("Backend port.", 1, 65535),
		}),
		"service": str("A supervisord program section: \"[program:<name>]\" and its settings."),
		"rpm": b.object("rpm", rpmKeys, "Packages for rpm (dnf) images.", map[string]js{
			"packages": pkgs("rpm"),
			"copr":     listOf("COPR repositories (owner/project), enabled for the install only.", js{"type": "string", "pattern": `^[^/\s]+/[^/\s]+$`}),
			"repos": listOf("External repositories, added disabled and enabled for the install.", b.object("rpm.repos entry", repoKeys, "A repository.", map[string]js{
				"name":   str("Repository id."),
				"url":    str("URL of a .repo file."),
				"gpgkey": str("URL of the signing key; optional (imported only when given)."),
			})),
			"exclude": listOf("dnf --exclude patterns.", scalar("A pattern.")),
			"options": listOf("Extra dnf flags, e.g. --setopt=tsflags=noscripts.", scalar("A flag.")),
		}),
		"deb": b.object("deb", debKeys, "Packages for deb (apt) images.", map[string]js{
			"packages": pkgs("deb"),
		}),
		"volumes": listOf("Named volumes: ov shell, ov start and ov pod mount ov-<image>-<name> at the path.", b.object("volumes entry", volumeKeys, "A volume.", map[string]js{
			"name": name("Volume name (like a layer name); the first declaration in an image's chain wins."),
			"path": str("Absolute path in the container; ~ and $HOME expand to the image user's home."),
		})),
	})
	top["type"] = []string{"object", "null"}
	return top
}
