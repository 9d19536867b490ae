package spec

import (
	"reflect"
	"strings"
	"testing"
)

// resolved is the inheritable part of an Image, for comparisons.
type resolved struct {
	Enabled   bool
	Base      string
	Parent    string
	Bootc     bool
	Platforms []string
	Tag       string
	Registry  string
	Pkg       string
	Ports     []string
	User      string
	UID, GID  int
	Merge     *Merge
}

func resolvedOf(img *Image) resolved {
	return resolved{img.Enabled, img.Base, img.Parent, img.Bootc, img.Platforms, img.Tag, img.Registry, img.Pkg, img.Ports, img.User, img.UID, img.GID, img.Merge}
}

// fallback is an image that sets nothing, with no defaults.
var fallback = resolved{
	Enabled: true, Base: "quay.io/fedora/fedora:43", Platforms: []string{"linux/amd64", "linux/arm64"},
	Tag: "auto", Pkg: "rpm", User: "user", UID: 1000, GID: 1000,
}

func with(r resolved, f func(*resolved)) resolved {
	r.Platforms = append([]string(nil), r.Platforms...)
	f(&r)
	return r
}

// allDefaults sets every inheritable key in defaults.
const allDefaults = `
defaults:
	enabled: true
	base: "ubuntu:24.04"
	bootc: true
	platforms: [linux/arm64]
	tag: nightly
	registry: ghcr.io/acme
	pkg: deb
	ports: ["8080"]
	user: dev
	uid: 2000
	gid: 3000
	merge:
		auto: true
		max_mb: 64
`

var fromDefaults = resolved{
	Enabled: true, Base: "ubuntu:24.04", Bootc: true, Platforms: []string{"linux/arm64"},
	Tag: "nightly", Registry: "ghcr.io/acme", Pkg: "deb", Ports: []string{"8080"},
	User: "dev", UID: 2000, GID: 3000, Merge: &Merge{Auto: true, MaxMB: 64},
}

func TestInheritance(t *testing.T) {
	tests := []struct {
		name   string
		images string
		image  string
		want   resolved
	}{
		{"fallbacks", `
images:
	app:
		layers: [l]
`, "app", fallback},
		{"defaults", allDefaults + `
images:
	app:
		layers: [l]
`, "app", fromDefaults},
		{"image overrides every default", allDefaults + `
images:
	app:
		enabled: true
		base: "quay.io/centos/centos:stream10"
		bootc: false
		platforms: [linux/amd64, linux/s390x]
		tag: "1.2.3"
		registry: registry.example.com:5000/team
		pkg: rpm
		ports: ["1:2", "3"]
		user: builder
		uid: 1
		gid: 2
		merge:
			auto: false
			max_mb: 1
		layers: [l]
`, "app", resolved{
			Enabled: true, Base: "quay.io/centos/centos:stream10", Platforms: []string{"linux/amd64", "linux/s390x"},
			Tag: "1.2.3", Registry: "registry.example.com:5000/team", Pkg: "rpm", Ports: []string{"1:2", "3"},
			User: "builder", UID: 1, GID: 2, Merge: &Merge{MaxMB: 1},
		}},
		{"uid and gid 0 in the image are real", allDefaults + `
images:
	app:
		uid: 0
		gid: 0
		user: root
		layers: [l]
`, "app", with(fromDefaults, func(r *resolved) { r.UID, r.GID, r.User = 0, 0, "root" })},
		{"uid 0 in defaults is real", `
defaults:
	uid: 0
images:
	app:
		layers: [l]
`, "app", with(fallback, func(r *resolved) { r.UID = 0 })},
		{"null means unset", allDefaults + `
images:
	app:
		uid: ~
		tag: null
		platforms:
		layers: [l]
`, "app", fromDefaults},
		{"merge fields inherit one by one", allDefaults + `
images:
	app:
		merge:
			max_mb: 256
		layers: [l]
`, "app", with(fromDefaults, func(r *resolved) { r.Merge = &Merge{Auto: true, MaxMB: 256} })},
		{"merge max_mb fallback", `
images:
	app:
		merge: {auto: true}
		layers: [l]
`, "app", with(fallback, func(r *resolved) { r.Merge = &Merge{Auto: true, MaxMB: 128} })},
		{"disabled by defaults", `
defaults:
	enabled: false
images:
	app:
		layers: [l]
`, "app", with(fallback, func(r *resolved) { r.Enabled = false })},
		{"enabled per image over defaults", `
defaults:
	enabled: false
images:
	app:
		enabled: true
		layers: [l]
`, "app", fallback},
		{"platforms normalized", `
images:
	app:
		platforms: [linux/x86_64, linux/aarch64, linux/arm/v7]
		layers: [l]
`, "app", with(fallback, func(r *resolved) { r.Platforms = []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} })},
		{"child inherits its parent's platforms over defaults", `
defaults:
	platforms: [linux/amd64, linux/arm64]
images:
	parent:
		platforms: [linux/arm64]
		layers: [l]
	child:
		base: parent
		layers: [l]
`, "child", with(fallback, func(r *resolved) { r.Base, r.Parent, r.Platforms = "parent", "parent", []string{"linux/arm64"} })},
		{"child narrows its parent's platforms", `
images:
	parent:
		layers: [l]
	child:
		base: parent
		platforms: [linux/arm64]
		layers: [l]
`, "child", with(fallback, func(r *resolved) { r.Base, r.Parent, r.Platforms = "parent", "parent", []string{"linux/arm64"} })},
		{"grandchild inherits through the chain", `
images:
	root:
		platforms: [linux/amd64]
		layers: [l]
	mid:
		base: root
		layers: [l]
	leaf:
		base: mid
		layers: [l]
`, "leaf", with(fallback, func(r *resolved) { r.Base, r.Parent, r.Platforms = "mid", "mid", []string{"linux/amd64"} })},
		{"child inherits pkg and user from its parent, not defaults", `
defaults:
	pkg: rpm
	uid: 1000
images:
	ubuntu:
		base: ubuntu:24.04
		pkg: deb
		user: ubuntu
		uid: 0
		gid: 0
		layers: [l]
	child:
		base: ubuntu
		tag: "2"
		layers: [l]
`, "child", with(fallback, func(r *resolved) {
			r.Base, r.Parent, r.Pkg, r.User, r.UID, r.GID, r.Tag = "ubuntu", "ubuntu", "deb", "ubuntu", 0, 0, "2"
		})},
		{"child does not inherit tag, registry, bootc, ports or merge from its parent", `
images:
	parent:
		tag: "1"
		registry: ghcr.io/p
		bootc: true
		ports: ["80"]
		merge: {auto: true}
		layers: [l]
	child:
		base: parent
		layers: [l]
`, "child", with(fallback, func(r *resolved) { r.Base, r.Parent = "parent", "parent" })},
		{"base from defaults can name an image", `
defaults:
	base: root
images:
	root:
		base: quay.io/fedora/fedora:43
		layers: [l]
	app:
		layers: [l]
`, "app", with(fallback, func(r *resolved) { r.Base, r.Parent = "root", "root" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoad(t, yml(tt.images), nil, "l")
			got := resolvedOf(p.Image(tt.image))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
				if got.Merge != nil && tt.want.Merge != nil {
					t.Errorf("merge got %+v want %+v", *got.Merge, *tt.want.Merge)
				}
			}
		})
	}
}

func TestLayerOrder(t *testing.T) {
	// deps: layer -> depends
	tests := []struct {
		name    string
		deps    map[string]string
		images  string
		install map[string]string // image -> install order
		order   string
	}{
		{"written order is kept", nil, `
images:
	app:
		layers: [zeta, alpha, mid]
`, map[string]string{"app": "zeta alpha mid"}, "app"},
		{"dependencies first, in depends order", map[string]string{"app": "lib2, lib1"}, `
images:
	x:
		layers: [app]
`, map[string]string{"x": "lib2 lib1 app"}, "x"},
		{"transitive", map[string]string{"a": "b", "b": "c", "c": "d"}, `
images:
	x:
		layers: [a]
`, map[string]string{"x": "d c b a"}, "x"},
		{"a dependency written later moves up only as far as needed", map[string]string{"a": "c"}, `
images:
	x:
		layers: [b, a, c, d]
`, map[string]string{"x": "b c a d"}, "x"},
		{"diamond", map[string]string{"top": "left, right", "left": "base", "right": "base"}, `
images:
	x:
		layers: [top]
`, map[string]string{"x": "base left right top"}, "x"},
		{"layers of the base chain are skipped", map[string]string{"python": "pixi", "supervisord": "python", "traefik": "supervisord", "testapi": "traefik, python"}, `
images:
	fedora:
		layers: [pixi, python]
	mid:
		base: fedora
		layers: [supervisord]
	leaf:
		base: mid
		layers: [python, testapi, pixi]
`, map[string]string{"fedora": "pixi python", "mid": "supervisord", "leaf": "traefik testapi"}, "fedora mid leaf"},
		{"a dependency only a sibling image installs is installed again", map[string]string{"b": "a"}, `
images:
	one:
		layers: [a]
	two:
		layers: [b]
`, map[string]string{"one": "a", "two": "a b"}, "one two"},
		{"image order: parents first, otherwise written (not alphabetical)", nil, `
images:
	zed:
		base: mid
		layers: [a]
	other:
		layers: [a]
	mid:
		base: root
		layers: [b]
	root:
		layers: [c]
	alpha:
		layers: [a]
`, nil, "root mid zed other alpha"},
		{"disabled images are not built", nil, `
images:
	off:
		enabled: false
		layers: [a]
	on:
		layers: [a]
	child-off:
		base: on
		enabled: false
		layers: [b]
`, map[string]string{"off": "a", "on": "a", "child-off": "b"}, "on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			names := []string{"a", "b", "c", "d", "zeta", "alpha", "mid"}
			for l, deps := range tt.deps {
				files["layers/"+l+"/layer.yml"] = "depends: [" + deps + "]\n"
				names = append(names, l)
				for _, d := range strings.Split(deps, ", ") {
					names = append(names, d)
				}
			}
			p := mustLoad(t, yml(tt.images), files, names...)
			for img, want := range tt.install {
				if got := strings.Join(p.Image(img).Install, " "); got != want {
					t.Errorf("%s installs %q, want %q", img, got, want)
				}
			}
			if got := strings.Join(p.Order, " "); got != tt.order {
				t.Errorf("order %q, want %q", got, tt.order)
			}
		})
	}
}

func TestChainAndLayersOf(t *testing.T) {
	p := mustLoad(t, yml(`
images:
	root:
		layers: [a]
	mid:
		base: root
		layers: [b]
	leaf:
		base: mid
		layers: [c]
`), nil, "a", "b", "c")
	var names []string
	for _, img := range p.Chain(p.Image("leaf")) {
		names = append(names, img.Name)
	}
	if got := strings.Join(names, " "); got != "root mid leaf" {
		t.Errorf("chain %q", got)
	}
	if got := p.LayersOf(p.Image("mid")); len(got) != 1 || got[0] != p.Layer("b") {
		t.Errorf("LayersOf(mid) = %v", got)
	}
	if p.Image("nope") != nil || p.Layer("nope") != nil {
		t.Error("lookups of unknown names must be nil")
	}
	if got := strings.Join(p.Names, " "); got != "root mid leaf" {
		t.Errorf("names %q", got)
	}
}

func TestLayerFiles(t *testing.T) {
	p := mustLoad(t, "images:\n  x:\n    layers: [traefik, full]\n", map[string]string{
		"layers/traefik/root.yml":     task,
		"layers/full/layer.yml":       "rpm:\n  packages: [a]\n  copr: [o/p]\n  repos:\n    - {name: r, url: 'https://e.com/r.repo', gpgkey: 'https://e.com/k'}\n  exclude: ['x*']\n  options: [--nogpgcheck]\ndeb:\n  packages: [b]\nservice: |\n  [program:x]\nroute: {host: x.localhost, port: 80}\nports: [80, 443]\nenv: {A: '1'}\npath_append: [~/bin]\n",
		"layers/full/root.yml":        task,
		"layers/full/pyproject.toml":  "[project]\n",
		"layers/full/package.json":    "{}\n",
		"layers/full/Cargo.toml":      "[package]\n",
		"layers/full/src/main.rs":     "fn main() {}\n",
		"layers/full/user.yml":        task,
		"layers/full/unrelated.txt":   "x",
		"layers/.hidden/whatever.txt": "ignored",
		"layers/README.md":            "ignored",
	})
	l := p.Layer("full")
	if got := strings.Join(l.Files(), " "); got != "layer.yml root.yml pyproject.toml package.json Cargo.toml user.yml" {
		t.Errorf("files %q", got)
	}
	want := &Rpm{Packages: []string{"a"}, Copr: []string{"o/p"}, Repos: []Repo{{Name: "r", URL: "https://e.com/r.repo", GPGKey: "https://e.com/k"}}, Exclude: []string{"x*"}, Options: []string{"--nogpgcheck"}}
	if !reflect.DeepEqual(l.Rpm, want) {
		t.Errorf("rpm %+v", l.Rpm)
	}
	if got := l.Packages("deb"); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("deb packages %v", got)
	}
	if l.Service != "[program:x]\n" || *l.Route != (Route{"x.localhost", 80}) || !reflect.DeepEqual(l.Ports, []int{80, 443}) {
		t.Errorf("layer %+v", l)
	}
	if l.Dir != "/project/layers/full" || l.Pos != (Pos{"layers/full/layer.yml", 1}) {
		t.Errorf("dir %q pos %v", l.Dir, l.Pos)
	}
	if len(p.Layers) != 2 {
		t.Errorf("layers %v", p.LayerNames())
	}
}

// A layer whose only packages are for the other package manager is valid
// (it installs nothing there), and so are the shipped both-ways layers.
func TestOtherPackageManagerOnly(t *testing.T) {
	p := mustLoad(t, "images:\n  deb-image:\n    base: debian:12\n    pkg: deb\n    layers: [rpm-only]\n", map[string]string{
		"layers/rpm-only/layer.yml": "rpm:\n  packages: [dnf-plugins-core]\n  copr: [owner/project]\n",
	})
	if got := p.Layer("rpm-only").Packages("deb"); got != nil {
		t.Errorf("deb packages %v", got)
	}
	if got := p.Image("deb-image").Install; len(got) != 1 || got[0] != "rpm-only" {
		t.Errorf("install %v", got)
	}
}
