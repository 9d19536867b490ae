// Package bench holds ov's benchmarks: a synthetic project generator for
// "generate at scale" (validate, plan and generate of a large project), and
// the helpers the side-by-side harness (bench/cmd/ovbench) uses.
package bench

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Scale sizes a synthetic project. The same Scale always writes the same
// files.
type Scale struct {
	Images int
	Layers int
	Seed   uint64
}

// Issue7 is the scale issue 7 sets the 300 ms target at.
var Issue7 = Scale{Images: 100, Layers: 500, Seed: 7}

// Minimums WriteProject needs: the fixed layers (supervisord, traefik, hubs)
// and at least one image per root family.
const (
	minLayers = 16
	minImages = 4
)

// Shape knobs. Chains of chainLen layers each depending on the previous one
// make deep install orders; hubs are depended on by many layers (fan-out);
// fan-in layers depend on many others; images sit on base chains up to
// maxDepth deep.
const (
	nHubs    = 8
	chainLen = 25
	maxDepth = 7
)

// WriteProject writes a valid ov project into dir (images.yml, layers/,
// templates/) with s.Images images and s.Layers layers. The layer graph has
// long depends chains, hub layers many others depend on, and layers that
// depend on many; images form base chains several levels deep over deb and
// rpm roots; every layer is installed by some image. Layers mix deb/rpm
// packages, root.yml, user.yml, package.json, Cargo.toml with src/,
// pixi.toml, env and path_append, ports, supervisord services and traefik
// routes.
func WriteProject(dir string, s Scale) error {
	if s.Layers < minLayers || s.Images < minImages {
		return fmt.Errorf("synthetic project: need at least %d layers and %d images, got %d and %d", minLayers, minImages, s.Layers, s.Images)
	}
	g := &synth{rng: rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15)), files: map[string]string{}}
	g.layers(s.Layers)
	g.images(s.Images, s.Layers)
	g.files["templates/supervisord.header.conf"] = "[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\npidfile=/tmp/supervisord.pid\n"
	for _, rel := range slices.Sorted(maps.Keys(g.files)) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(g.files[rel]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type synth struct {
	rng   *rand.Rand
	files map[string]string // relative path -> content
	names []string          // layer names by index
	route []bool            // layer index has a route
}

var (
	debPkgs = []string{"curl", "git", "jq", "make", "gcc", "g++", "libssl-dev", "zlib1g-dev", "python3", "python3-pip",
		"nodejs", "npm", "rustc", "cargo", "ripgrep", "fd-find", "htop", "tmux", "vim", "less", "unzip", "zip",
		"xz-utils", "openssh-client", "rsync", "postgresql-client", "redis-tools", "libpq-dev", "pkg-config", "cmake"}
	rpmPkgs = []string{"curl", "git", "jq", "make", "gcc", "gcc-c++", "openssl-devel", "zlib-devel", "python3", "python3-pip",
		"nodejs", "npm", "rust", "cargo", "ripgrep", "fd-find", "htop", "tmux", "vim-enhanced", "less", "unzip", "zip",
		"xz", "openssh-clients", "rsync", "postgresql", "redis", "libpq-devel", "pkgconf", "cmake"}
	// kinds of layers and their weights: mostly packages and tools, as in
	// real libraries, with services and routed web apps rarer (each one
	// adds a supervisord fragment or a traefik route to every image
	// below it).
	kinds = []struct {
		name   string
		weight int
	}{{"pkg", 30}, {"tool", 20}, {"node", 10}, {"rust", 7}, {"pixi", 10}, {"cfg", 11}, {"svc", 6}, {"web", 6}}
)

// kind picks a layer kind by weight.
func (g *synth) kind() string {
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	n := g.rng.IntN(total)
	for _, k := range kinds {
		if n < k.weight {
			return k.name
		}
		n -= k.weight
	}
	panic("unreachable")
}

func (g *synth) pick(list []string, n int) []string {
	idx := g.rng.Perm(len(list))[:n]
	slices.Sort(idx)
	out := make([]string, n)
	for i, j := range idx {
		out[i] = list[j]
	}
	return out
}

// layers writes n layers: supervisord, traefik, the hubs, then the rest in
// chain blocks. Layer i depends only on layers before it, so the graph is
// acyclic by construction.
func (g *synth) layers(n int) {
	g.names = make([]string, n)
	g.route = make([]bool, n)
	g.names[0], g.names[1] = "supervisord", "traefik"
	g.layer(0, layerDef{debs: []string{"supervisor"}, rpms: []string{"supervisor"}, paths: []string{"/usr/local/sbin"}})
	g.layer(1, layerDef{depends: []int{0}, root: true, ports: []int{8000, 8080},
		service: "[program:traefik]\ncommand=/usr/local/bin/traefik --configFile=/etc/traefik/traefik.yml\nautorestart=true\n"})
	for i := 2; i < 2+nHubs; i++ {
		g.names[i] = fmt.Sprintf("hub-%d", i-1)
		d := layerDef{debs: g.pick(debPkgs, 2+g.rng.IntN(4)), rpms: g.pick(rpmPkgs, 2+g.rng.IntN(4)),
			env: map[string]string{fmt.Sprintf("HUB_%d_HOME", i-1): "~/.hub" + strconv.Itoa(i-1)}}
		if i > 2 {
			d.depends = []int{i - 1} // hubs form a short chain themselves
		}
		g.layer(i, d)
	}
	first := 2 + nHubs
	for i := first; i < n; i++ {
		kind := g.kind()
		g.names[i] = fmt.Sprintf("%s-%03d", kind, i)
		g.layer(i, g.def(i, first, kind))
	}
}

// def decides layer i's depends and contents.
func (g *synth) def(i, first int, kind string) layerDef {
	var d layerDef
	deps := map[int]bool{}
	block := (i - first) / chainLen
	if block%2 == 0 && (i-first)%chainLen != 0 {
		deps[i-1] = true // deep: a chain through the whole block
	}
	if g.rng.IntN(2) == 0 {
		deps[2+g.rng.IntN(nHubs)] = true // fan-out from the hubs
	}
	if g.rng.IntN(4) == 0 {
		deps[2] = true // hub-1 is everyone's base tooling: wide fan-out
	}
	if g.rng.IntN(20) == 0 && i-first > 20 {
		for range 10 + g.rng.IntN(11) { // fan-in
			deps[first+g.rng.IntN(i-first)] = true
		}
	}
	for range g.rng.IntN(3) {
		if i > first {
			deps[first+g.rng.IntN(i-first)] = true
		}
	}
	switch kind {
	case "pkg":
		switch g.rng.IntN(3) {
		case 0:
			d.debs = g.pick(debPkgs, 1+g.rng.IntN(6))
		case 1:
			d.rpms = g.pick(rpmPkgs, 1+g.rng.IntN(6))
		default:
			d.debs, d.rpms = g.pick(debPkgs, 1+g.rng.IntN(6)), g.pick(rpmPkgs, 1+g.rng.IntN(6))
		}
		if d.rpms != nil && g.rng.IntN(6) == 0 {
			d.copr = fmt.Sprintf("bench/tools%d", i)
			d.exclude = []string{"*-debuginfo"}
			d.options = []string{"--setopt=install_weak_deps=False"}
		}
		d.root = g.rng.IntN(3) == 0
	case "tool":
		d.root = true
		d.paths = []string{fmt.Sprintf("/opt/%s/bin", g.names[i])}
		d.env = map[string]string{envKey(g.names[i]) + "_HOME": "/opt/" + g.names[i]}
	case "node":
		d.packageJSON = true
		d.user = g.rng.IntN(2) == 0
		d.env = map[string]string{"NPM_CONFIG_PREFIX": "~/.npm-global"}
		d.paths = []string{"~/.npm-global/bin"}
	case "rust":
		d.cargo = true
		d.paths = []string{"$HOME/.cargo/bin"}
	case "pixi":
		d.pixi = true
		d.paths = []string{"~/.pixi/envs/default/bin"}
		d.env = map[string]string{"PIXI_CACHE_DIR": "${HOME}/.cache/pixi"}
	case "svc":
		d.root = true
		d.ports = []int{10000 + i}
		d.service = fmt.Sprintf("[program:%s]\ncommand=/opt/%s/bin/run --port %d\nautorestart=true\n", g.names[i], g.names[i], 10000+i)
		deps[0] = true
	case "web":
		d.root = true
		d.ports = []int{20000 + i}
		d.route = fmt.Sprintf("%s.localhost", g.names[i])
		d.routePort = 20000 + i
		d.service = fmt.Sprintf("[program:%s]\ncommand=/opt/%s/bin/serve --port %d\nautorestart=true\n", g.names[i], g.names[i], 20000+i)
		deps[1] = true // a route needs traefik
		g.route[i] = true
	case "cfg":
		d.user = true
		d.env = map[string]string{envKey(g.names[i]) + "_CONFIG": "$HOME/.config/" + g.names[i]}
	}
	d.depends = slices.Sorted(maps.Keys(deps))
	return d
}

func envKey(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

type layerDef struct {
	depends          []int
	debs, rpms       []string
	copr             string
	exclude, options []string
	env              map[string]string
	paths            []string
	ports            []int
	service          string
	route            string
	routePort        int
	root, user       bool
	packageJSON      bool
	cargo, pixi      bool
}

// layer writes layers/<name>/: layer.yml and the install files of d.
func (g *synth) layer(i int, d layerDef) {
	name := g.names[i]
	dir := "layers/" + name + "/"
	var y strings.Builder
	fmt.Fprintf(&y, "# synthetic layer %d\n", i)
	if len(d.depends) > 0 {
		y.WriteString("depends:\n")
		for _, dep := range d.depends {
			fmt.Fprintf(&y, "  - %s\n", g.names[dep])
		}
	}
	if len(d.env) > 0 {
		y.WriteString("env:\n")
		for _, k := range slices.Sorted(maps.Keys(d.env)) {
			fmt.Fprintf(&y, "  %s: %s\n", k, strconv.Quote(d.env[k]))
		}
	}
	list(&y, "path_append", d.paths, true)
	if len(d.ports) > 0 {
		y.WriteString("ports:\n")
		for _, p := range d.ports {
			fmt.Fprintf(&y, "  - %d\n", p)
		}
	}
	if d.route != "" {
		fmt.Fprintf(&y, "route:\n  host: %s\n  port: %d\n", d.route, d.routePort)
	}
	if d.service != "" {
		y.WriteString("service: |\n")
		for _, line := range strings.SplitAfter(strings.TrimSuffix(d.service, "\n"), "\n") {
			y.WriteString("  " + line)
		}
		y.WriteString("\n")
	}
	if len(d.rpms) > 0 {
		y.WriteString("rpm:\n")
		list(&y, "  packages", d.rpms, false)
		if d.copr != "" {
			list(&y, "  copr", []string{d.copr}, false)
			list(&y, "  exclude", d.exclude, true)
			list(&y, "  options", d.options, true)
		}
	}
	if len(d.debs) > 0 {
		y.WriteString("deb:\n")
		list(&y, "  packages", d.debs, false)
	}
	g.files[dir+"layer.yml"] = y.String()

	if d.root {
		g.files[dir+"root.yml"] = taskfile(fmt.Sprintf("mkdir -p /opt/%s/bin", name),
			fmt.Sprintf("printf '#!/bin/sh\\necho %s\\n' > /opt/%s/bin/%s", name, name, name),
			fmt.Sprintf("chmod 0755 /opt/%s/bin/%s", name, name))
	}
	if d.user {
		g.files[dir+"user.yml"] = taskfile(fmt.Sprintf(`mkdir -p "$HOME/.config/%s"`, name),
			fmt.Sprintf(`echo %d > "$HOME/.config/%s/installed"`, i, name))
	}
	if d.packageJSON {
		g.files[dir+"package.json"] = fmt.Sprintf("{\n  \"name\": %q,\n  \"version\": \"1.0.%d\",\n  \"bin\": { %q: \"index.js\" },\n  \"license\": \"MIT\"\n}\n", name, i, name)
		g.files[dir+"index.js"] = fmt.Sprintf("#!/usr/bin/env node\nconsole.log(%q);\n", name)
	}
	if d.cargo {
		g.files[dir+"Cargo.toml"] = fmt.Sprintf("[package]\nname = %q\nversion = \"0.1.%d\"\nedition = \"2021\"\n\n[dependencies]\n", name, i)
		g.files[dir+"src/main.rs"] = fmt.Sprintf("fn main() {\n    println!(%q);\n}\n", name)
	}
	if d.pixi {
		g.files[dir+"pixi.toml"] = fmt.Sprintf("[workspace]\nname = %q\nchannels = [\"conda-forge\"]\nplatforms = [\"linux-64\", \"linux-aarch64\"]\n\n[dependencies]\npython = \">=3.12\"\n", name)
	}
}

func list(y *strings.Builder, key string, items []string, quote bool) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(y, "%s:\n", key)
	indent := strings.Repeat(" ", len(key)-len(strings.TrimLeft(key, " ")))
	for _, it := range items {
		if quote {
			it = strconv.Quote(it)
		}
		fmt.Fprintf(y, "%s  - %s\n", indent, it)
	}
}

func taskfile(cmds ...string) string {
	var b strings.Builder
	b.WriteString("version: '3'\ntasks:\n  install:\n    cmds:\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "      - %s\n", strconv.Quote(c))
	}
	return b.String()
}

// roots are the external bases of the root images, alternating families.
var roots = []struct{ base, pkg string }{
	{"debian:bookworm", "deb"},
	{"quay.io/fedora/fedora:43", "rpm"},
	{"ubuntu:24.04", "deb"},
	{"registry.fedoraproject.org/fedora:42", "rpm"},
}

// images writes images.yml: a few roots on external bases, then children on
// earlier images, mostly extending the latest chain (deep) and otherwise
// hanging off a random earlier image (wide). Layers are dealt round-robin
// so that every layer is listed by some image.
func (g *synth) images(n, nLayers int) {
	nRoots := max(minImages, n/10)
	depth := make([]int, n)
	parent := make([]int, n)
	listed := make([][]int, n)
	for l := 0; l < nLayers; l++ {
		listed[l%n] = append(listed[l%n], l)
	}
	var y strings.Builder
	y.WriteString("# synthetic project (bench.WriteProject)\ndefaults:\n  registry: ghcr.io/ov-bench\n  platforms:\n    - linux/amd64\n    - linux/arm64\n  merge:\n    auto: false\n    max_mb: 64\n\nimages:\n")
	for i := range n {
		name := fmt.Sprintf("img-%03d", i)
		fmt.Fprintf(&y, "  %s:\n", name)
		if i < nRoots {
			r := roots[i%len(roots)]
			parent[i] = -1
			fmt.Fprintf(&y, "    base: %q\n", r.base)
			fmt.Fprintf(&y, "    pkg: %s\n", r.pkg)
			if i%3 == 1 {
				y.WriteString("    platforms:\n      - linux/amd64\n")
			}
			if i%5 == 2 {
				y.WriteString("    user: dev\n    uid: 1001\n    gid: 1001\n")
			}
			if r.pkg == "rpm" && i%4 == 3 {
				y.WriteString("    bootc: true\n")
			}
		} else {
			p := i - 1
			if g.rng.IntN(2) == 0 || depth[p] >= maxDepth {
				p = g.rng.IntN(i)
			}
			for depth[p] >= maxDepth {
				p = parent[p]
			}
			parent[i], depth[i] = p, depth[p]+1
			fmt.Fprintf(&y, "    base: img-%03d\n", p)
		}
		switch i % 7 {
		case 1:
			y.WriteString("    tag: \"1.2.3\"\n")
		case 4:
			fmt.Fprintf(&y, "    ports:\n      - \"%d:80\"\n      - \"%d\"\n", 30000+i, 40000+i)
		}
		// Extra picks beyond the dealt layers make images overlap, like
		// real projects where many images want the same tools.
		ls := slices.Clone(listed[i])
		for range g.rng.IntN(4) {
			if l := 2 + g.rng.IntN(nLayers-2); !slices.Contains(ls, l) {
				ls = append(ls, l)
			}
		}
		y.WriteString("    layers:\n")
		for _, l := range ls {
			fmt.Fprintf(&y, "      - %s\n", g.names[l])
		}
	}
	g.files["images.yml"] = y.String()
}
