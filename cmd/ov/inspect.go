package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/overthink/ov/pod"
	"github.com/overthink/ov/spec"
)

// InspectCmd prints an image's resolved configuration.
type InspectCmd struct {
	Image  string `arg:"" predictor:"image" help:"Image name from images.yml."`
	Format string `short:"f" placeholder:"FIELD" predictor:"inspect-field" help:"Print only FIELD, bare, for shell substitution: name, enabled, base, parent, chain, bootc, platforms, registry, tag, tags, pkg, layers, layers_written, ports, volumes, user, uid, gid. Lists are space-separated on one line."`
}

func (c *InspectCmd) Help() string {
	return `Prints the image after inheritance (image -> defaults -> fallback; a base
image's platforms, pkg and user carry over to images built on it) as JSON:
"layers" is the resolved install order (dependencies first, without layers
a base image already installs), "layers_written" the list in images.yml,
"tags" the references a build is tagged with now, "tag" the reference
ov shell and ov start run, so docker run $(ov inspect X --format tag) runs
the newest build (for tag auto: <registry>/<name>:latest, as the CalVer of
now names no build yet; else the configured tag), "volumes" the named
volumes ov shell, ov start and ov pod mount (--format volumes prints them
as docker -v values: ov-<image>-<name>:<path>).

Example: ov inspect fedora-test --format layers`
}

// inspectJSON is the JSON shape of `ov inspect`.
type inspectJSON struct {
	Name          string       `json:"name"`
	Enabled       bool         `json:"enabled"`
	Base          string       `json:"base"`
	Parent        string       `json:"parent"`
	Chain         []string     `json:"chain"`
	Bootc         bool         `json:"bootc"`
	Platforms     []string     `json:"platforms"`
	Registry      string       `json:"registry"`
	Tag           string       `json:"tag"`
	Tags          []string     `json:"tags"`
	Pkg           string       `json:"pkg"`
	Layers        []string     `json:"layers"`
	LayersWritten []string     `json:"layers_written"`
	Ports         []string     `json:"ports"`
	Volumes       []volumeJSON `json:"volumes"`
	User          string       `json:"user"`
	UID           int          `json:"uid"`
	GID           int          `json:"gid"`
	Merge         *mergeJSON   `json:"merge"`
}

type volumeJSON struct {
	Name   string `json:"name"`
	Volume string `json:"volume"` // the engine's name
	Path   string `json:"path"`
}

type mergeJSON struct {
	Auto  bool `json:"auto"`
	MaxMB int  `json:"max_mb"`
}

// inspectFields are the --format fields, in the order of the JSON.
var inspectFields = []string{"name", "enabled", "base", "parent", "chain", "bootc", "platforms", "registry", "tag", "tags", "pkg", "layers", "layers_written", "ports", "volumes", "user", "uid", "gid"}

func (c *InspectCmd) Run(g *Globals) error {
	if c.Format != "" && !contains(inspectFields, c.Format) {
		return userErrorf("unknown --format field %q%s; use one of: %s", c.Format, spec.DidYouMean(c.Format, inspectFields), strings.Join(inspectFields, ", "))
	}
	p, err := loadProject(g)
	if err != nil {
		return err
	}
	img, err := findImage(p, c.Image)
	if err != nil {
		return err
	}
	v := inspectJSON{
		Name:          img.Name,
		Enabled:       img.Enabled,
		Base:          img.Base,
		Parent:        img.Parent,
		Bootc:         img.Bootc,
		Platforms:     nonNil(img.Platforms),
		Registry:      img.Registry,
		Tags:          img.Tags(g.CalVer(), ""),
		Pkg:           img.Pkg,
		Layers:        nonNil(img.Install),
		LayersWritten: nonNil(img.Layers),
		Ports:         nonNil(img.Ports),
		User:          img.User,
		UID:           img.UID,
		GID:           img.GID,
		Chain:         []string{},
	}
	v.Tag = runRef(img, "")
	// Volumes under the home may need the base image's passwd: only
	// when asked for.
	var mounts []string
	if c.Format == "" || c.Format == "volumes" {
		if v.Volumes, mounts, err = inspectVolumes(p, img); err != nil {
			return err
		}
	}
	for _, ci := range p.Chain(img) {
		v.Chain = append(v.Chain, ci.Name)
	}
	if img.Merge != nil {
		v.Merge = &mergeJSON{Auto: img.Merge.Auto, MaxMB: img.Merge.MaxMB}
	}
	if c.Format == "" {
		out, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.Stdout, "%s\n", out)
		return err
	}
	fields := map[string]string{
		"name":           v.Name,
		"enabled":        strconv.FormatBool(v.Enabled),
		"base":           v.Base,
		"parent":         v.Parent,
		"chain":          strings.Join(v.Chain, " "),
		"bootc":          strconv.FormatBool(v.Bootc),
		"platforms":      strings.Join(v.Platforms, " "),
		"registry":       v.Registry,
		"tag":            v.Tag,
		"tags":           strings.Join(v.Tags, " "),
		"pkg":            v.Pkg,
		"layers":         strings.Join(v.Layers, " "),
		"layers_written": strings.Join(v.LayersWritten, " "),
		"ports":          strings.Join(v.Ports, " "),
		"volumes":        strings.Join(mounts, " "),
		"user":           v.User,
		"uid":            strconv.Itoa(v.UID),
		"gid":            strconv.Itoa(v.GID),
	}
	_, err = fmt.Fprintln(g.Stdout, fields[c.Format])
	return err
}

// inspectVolumes returns img's volumes for the JSON and as -v values.
func inspectVolumes(p *spec.Project, img *spec.Image) ([]volumeJSON, []string, error) {
	users, err := userLookup(false)
	if err != nil {
		return nil, nil, err
	}
	ctx, stop := interruptible()
	defer stop()
	volumes, err := imageVolumes(ctx, p, img, users)
	if err != nil {
		return nil, nil, err
	}
	out, mounts := []volumeJSON{}, []string{}
	for _, vol := range volumes {
		name := pod.VolumeName(img.Name, vol.Name)
		out = append(out, volumeJSON{Name: vol.Name, Volume: name, Path: vol.Path})
		mounts = append(mounts, name+":"+vol.Path)
	}
	return out, mounts, nil
}

// findImage returns the named image or a user error suggesting the nearest
// name.
func findImage(p *spec.Project, name string) (*spec.Image, error) {
	if img := p.Image(name); img != nil {
		return img, nil
	}
	return nil, userErrorf("unknown image %q%s (images: %s)", clipArg(name), spec.DidYouMean(name, p.Names), strings.Join(p.Names, ", "))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
