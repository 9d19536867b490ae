package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"gopkg.in/yaml.v3"

	"github.com/overthink/ov/installfile"
	"github.com/overthink/ov/spec"
)

// Defaults for Options.
const (
	DefaultTaskURL   = "https://github.com/go-task/task/releases/download/v3.54.0"
	DefaultPixiImage = "ghcr.io/prefix-dev/pixi:latest"
)

// Stages that steps refer to by name, besides layer contexts (named after
// their layer) and pixi build stages (PixiStage.Stage).
const (
	StageSupervisord = "supervisord-conf" // the fragments under /fragments
	StageTraefik     = "traefik-routes"   // /routes.yml
)

// Paths inside images.
const (
	LayerMount     = "/ctx"       // where a step sees its layer's files
	FragmentsMount = "/fragments" // where the assembly step sees the fragments
	PixiBinary     = "/usr/local/bin/pixi"
	RoutesFile     = "/etc/traefik/dynamic/routes.yml"
)

// TraefikEntryPoint is the entry point of the traefik layer's static
// config (layers/traefik/traefik.yml) that routes are bound to.
const TraefikEntryPoint = "web"

// HeaderFile is the project file whose content leads the supervisord config.
const HeaderFile = spec.HeaderFile

// UserLookup resolves the account an external base has at want.UID (see
// baseuser.Lookup). It returns want with a home when the base has none.
type UserLookup func(ctx context.Context, baseRef string, want spec.User) (spec.User, error)

// Options are the inputs Build needs beyond the project.
type Options struct {
	// CalVer is the invocation's version, for tag "auto" (spec.CalVer).
	CalVer string
	// TagOverride replaces the CalVer of tag "auto" (ov generate --tag):
	// <override> and latest.
	TagOverride string
	// Task says where the bootstrap fetches task; URL defaults to
	// DefaultTaskURL.
	Task TaskSource
	// PixiImage is the image pixi build stages run in; default
	// DefaultPixiImage.
	PixiImage string
	// Users resolves users of external bases; nil uses the configured user
	// with home /home/<user> (/root for uid 0) without asking any registry.
	Users UserLookup
}

// Build plans the named images and the parent images they build from (every
// enabled image when names is empty), parents first.
func Build(p *spec.Project, names []string, opts Options) ([]*Image, error) {
	return BuildContext(context.Background(), p, names, opts)
}

// BuildContext is Build with a context for the user lookups.
func BuildContext(ctx context.Context, p *spec.Project, names []string, opts Options) ([]*Image, error) {
	if opts.Task.URL == "" {
		opts.Task.URL = DefaultTaskURL
	}
	opts.Task.URL = strings.TrimSuffix(opts.Task.URL, "/")
	if err := checkTaskSource(opts.Task); err != nil {
		return nil, err
	}
	if opts.PixiImage == "" {
		opts.PixiImage = DefaultPixiImage
	}
	if err := checkRef("pixi image", opts.PixiImage); err != nil {
		return nil, err
	}
	order, err := selectImages(p, names)
	if err != nil {
		return nil, err
	}
	b := newBuilder(ctx, p, opts)
	out := make([]*Image, 0, len(order))
	for _, n := range order {
		pl, err := b.image(p.Images[n])
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", n, err)
		}
		b.plans[n] = pl
		out = append(out, pl)
	}
	return out, nil
}

// selectImages returns names plus their parents, in p.Order.
func selectImages(p *spec.Project, names []string) ([]string, error) {
	if len(names) == 0 {
		return p.Order, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		img := p.Images[n]
		switch {
		case img == nil:
			return nil, fmt.Errorf("image %q is not in images.yml", n)
		case !img.Enabled:
			return nil, fmt.Errorf("image %q is disabled (enabled: false)", n)
		}
		for _, c := range p.Chain(img) {
			want[c.Name] = true
		}
	}
	var out []string
	for _, n := range p.Order {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

type builder struct {
	ctx   context.Context
	p     *spec.Project
	opts  Options
	users map[string]spec.User // external base + uid -> resolved
	plans map[string]*Image
}

func newBuilder(ctx context.Context, p *spec.Project, opts Options) *builder {
	if opts.Users == nil {
		opts.Users = func(_ context.Context, _ string, want spec.User) (spec.User, error) {
			return defaultUser(want), nil
		}
	}
	return &builder{ctx: ctx, p: p, opts: opts, users: map[string]spec.User{}, plans: map[string]*Image{}}
}

// ImageUser resolves the account img's user steps run as, as Build does
// (users as in Options.Users): hosts that run the image need its home.
func ImageUser(ctx context.Context, p *spec.Project, img *spec.Image, users UserLookup) (spec.User, error) {
	u, _, err := newBuilder(ctx, p, Options{Users: users}).user(img)
	return u, err
}

func defaultUser(want spec.User) spec.User {
	u := want
	u.Home = "/home/" + want.Name
	if want.UID == 0 {
		u.Home = "/root"
	}
	return u
}

// user resolves img's user: the parent's user unless img sets a user of its
// own (own is then true), else the passwd entry at the configured UID of the
// external base at the root of img's chain.
func (b *builder) user(img *spec.Image) (u spec.User, own bool, err error) {
	want := spec.User{Name: img.User, UID: img.UID, GID: img.GID}
	base := img
	for base.Parent != "" {
		parent := b.p.Images[base.Parent]
		if parent == nil {
			return spec.User{}, false, fmt.Errorf("base image %q is not in images.yml", base.Parent)
		}
		if base == img && parent.User == img.User && parent.UID == img.UID && parent.GID == img.GID {
			u, _, err := b.user(parent)
			return u, false, err
		}
		base = parent
	}
	u, err = b.lookup(base.Base, want)
	return u, base != img, err
}

// lookup resolves want in the external base ref.
func (b *builder) lookup(ref string, want spec.User) (spec.User, error) {
	key := fmt.Sprintf("%s\x00%d\x00%s\x00%d", ref, want.UID, want.Name, want.GID)
	if u, ok := b.users[key]; ok {
		return u, nil
	}
	u, err := b.opts.Users(b.ctx, ref, want)
	if err != nil {
		return spec.User{}, err
	}
	if u.Home == "" {
		u = defaultUser(u)
	}
	if err := checkUser(u); err != nil {
		return spec.User{}, fmt.Errorf("base %q: %w", ref, err)
	}
	b.users[key] = u
	return u, nil
}

var (
	// Account names and homes from a base's /etc/passwd end up in shell
	// commands, mount options and WORKDIR: accept only plain ones.
	userNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*\$?$`)
	homeRE     = regexp.MustCompile(`^/[A-Za-z0-9_.+@-]+(/[A-Za-z0-9_.+@-]+)*$|^/$`)
)

func checkUser(u spec.User) error {
	if !userNameRE.MatchString(u.Name) || len(u.Name) > 32 {
		return fmt.Errorf("user name %q at uid %d is not a plain account name", u.Name, u.UID)
	}
	if !homeRE.MatchString(u.Home) || strings.Contains(u.Home, "/../") || strings.HasSuffix(u.Home, "/..") {
		return fmt.Errorf("home %q of user %q (uid %d) is not a plain absolute path", u.Home, u.Name, u.UID)
	}
	if u.UID < 0 || u.GID < 0 {
		return fmt.Errorf("user %q has a negative uid or gid", u.Name)
	}
	return nil
}

func checkRef(what, ref string) error {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return fmt.Errorf("%s %q is not a valid image reference: %v", what, ref, err)
	}
	return nil
}

var shaRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func checkTaskSource(t TaskSource) error {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.ContainsFunc(t.URL, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\'' || r == '"' || r == '\\' }) {
		return fmt.Errorf("task download location %q: want an http(s) URL of the directory holding task_linux_<arch>.tar.gz", t.URL)
	}
	for arch, sum := range t.SHA256 {
		if arch != "amd64" && arch != "arm64" {
			return fmt.Errorf("task sha256: unknown architecture %q (want amd64 or arm64)", arch)
		}
		if !shaRE.MatchString(sum) {
			return fmt.Errorf("task sha256 for %s: %q is not 64 hex digits", arch, sum)
		}
	}
	return nil
}

// ArchiveURL is the task archive for arch ("amd64", "arm64").
func (t TaskSource) ArchiveURL(arch string) string {
	return strings.TrimSuffix(t.URL, "/") + "/task_linux_" + arch + ".tar.gz"
}

// image plans one image; its parent, if any, is already planned.
func (b *builder) image(img *spec.Image) (*Image, error) {
	if !spec.ValidName(img.Name) {
		return nil, fmt.Errorf("%s: image name %q cannot name a build target", img.Pos, img.Name)
	}
	u, ownUser, err := b.user(img)
	if err != nil {
		return nil, err
	}
	pl := &Image{
		Name:      img.Name,
		Spec:      img,
		User:      u,
		Tags:      img.Tags(b.opts.CalVer, b.opts.TagOverride),
		Platforms: slices.Clone(img.Platforms),
		Task:      b.opts.Task,
	}
	for _, t := range pl.Tags {
		if strings.HasSuffix(t, ":") {
			return nil, fmt.Errorf("tag %q has no version (no CalVer given)", t)
		}
		if err := checkRef("tag", t); err != nil {
			return nil, err
		}
	}
	if img.Parent != "" {
		parent := b.plans[img.Parent]
		if parent == nil {
			return nil, fmt.Errorf("base image %q is not planned (is it enabled?)", img.Parent)
		}
		pl.Parent = img.Parent
		pl.ParentRef = parent.Tags[len(parent.Tags)-1] // :latest for "auto": stable across runs
	} else {
		if err := checkRef("base", img.Base); err != nil {
			return nil, err
		}
		pl.External = img.Base
	}

	own := b.p.LayersOf(img)
	for i, l := range own {
		if l == nil {
			return nil, fmt.Errorf("layer %q is not in layers/", img.Install[i])
		}
		if err := checkLayerName(l.Name); err != nil {
			return nil, err
		}
	}
	uid := strconv.Itoa(u.UID)
	owner := uid + ":" + strconv.Itoa(u.GID)
	stepUser := uid
	if u.UID == 0 {
		stepUser = "root"
	}

	// Environment and ports of the image's own layers; a parent's are in
	// its config already.
	env, paths := spec.Env(own, u.Home)
	for _, kv := range env {
		if err := spec.CheckEnvValue(kv.Value); err != nil {
			return nil, fmt.Errorf("env %s (from %s): %w", kv.Key, envSource(own, kv.Key), err)
		}
		pl.Env = append(pl.Env, EnvVar{Key: kv.Key, Value: kv.Value})
	}
	for _, pa := range paths {
		if err := spec.CheckEnvValue(pa); err != nil {
			return nil, fmt.Errorf("path_append %q: %w", pa, err)
		}
	}
	pl.PathAppend = paths
	pl.Expose = ports(own)

	// Scratch stages for the layers whose files steps read.
	for _, l := range own {
		if len(l.Installs) > 0 {
			rel, err := filepath.Rel(b.p.Dir, l.Dir)
			if err != nil || !filepath.IsLocal(rel) {
				rel = "layers/" + l.Name
			}
			pl.Contexts = append(pl.Contexts, Context{Layer: l.Name, Dir: l.Dir, Rel: filepath.ToSlash(rel)})
		}
	}

	switch {
	case pl.External != "":
		pl.Bootstrap = bootstrap(img.Pkg, u, b.opts.Task)
		pl.Workdir = u.Home
	case ownUser:
		// A child with a user of its own (a CI runner as root): its steps
		// and final USER are that user's.
		if u.UID != 0 {
			pl.Bootstrap = []Step{userStep(u)}
		}
		pl.Workdir = u.Home
	}

	// Pixi stages and the copies of their environments.
	envDir := path.Join(u.Home, ".pixi/envs/default")
	for _, l := range own {
		f, ok := l.Install("pixi")
		if !ok {
			continue
		}
		ps := pixiStage(l.Name, f, b.opts.PixiImage, u.Home, envDir)
		pl.Pixi = append(pl.Pixi, ps)
		pl.Steps = append(pl.Steps, Step{Kind: Copy, From: ps.Stage, Src: envDir, Dst: envDir, Chown: owner,
			Desc: "COPY pixi environment of " + l.Name})
	}
	if len(pl.Pixi) > 0 {
		pl.Steps = append(pl.Steps, Step{Kind: Copy, From: pl.Pixi[0].Stage, Src: PixiBinary, Dst: PixiBinary,
			Desc: "COPY pixi binary"})
	}

	// Per-layer steps.
	ls := layerSteps{pkg: img.Pkg, user: u, uid: stepUser}
	var steps []Step
	for _, l := range own {
		s, err := ls.steps(l)
		if err != nil {
			return nil, fmt.Errorf("layer %q: %w", l.Name, err)
		}
		steps = append(steps, s...)
	}
	pl.Depends = depends(own)
	detach(steps, pl.Depends)
	pl.Steps = append(pl.Steps, prepareCacheDirs(steps, u)...)
	if s := volumeDirs(b.ownVolumes(img), u); s != nil {
		pl.Steps = append(pl.Steps, *s)
	}

	// An image whose own layers add services or routes rewrites
	// supervisord.conf and routes.yml, which replace the parent's: they
	// cover the whole chain. Otherwise the parent's stay as they are.
	chain := b.chainLayers(img)
	if slices.ContainsFunc(own, func(l *spec.Layer) bool { return l.Service != "" }) {
		if err := b.services(pl, img, chain); err != nil {
			return nil, err
		}
	}
	if slices.ContainsFunc(own, func(l *spec.Layer) bool { return l.Route != nil }) {
		if err := routes(pl, img, chain); err != nil {
			return nil, err
		}
	}

	pl.FinalUser = uid
	if img.Bootc {
		pl.Lint = &Step{Kind: Run, User: "root", Shell: "bootc container lint", Desc: "bootc container lint"}
	}
	return pl, nil
}

// chainLayers lists the layers of img's whole base chain, root first, as the
// image ends up with them.
func (b *builder) chainLayers(img *spec.Image) []*spec.Layer {
	var out []*spec.Layer
	for _, c := range b.p.Chain(img) {
		out = append(out, b.p.LayersOf(c)...)
	}
	return out
}

func checkLayerName(n string) error {
	switch {
	case !spec.ValidName(n):
		return fmt.Errorf("layer name %q cannot name a build stage", n)
	case spec.ReservedStage(n):
		return fmt.Errorf("layer name %q is reserved for a build stage", n)
	}
	return nil
}

// envSource names the layer.yml that sets key last, for messages.
func envSource(layers []*spec.Layer, key string) string {
	src := "layer.yml"
	for _, l := range layers {
		if _, ok := l.Env[key]; ok {
			src = l.Pos.File
		}
	}
	return src
}

func ports(layers []*spec.Layer) []int {
	seen := map[int]bool{}
	var out []int
	for _, l := range layers {
		for _, p := range l.Ports {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Ints(out)
	return out
}

// Cache mounts, with ids shared by every image (and by bake and ov build).
func rpmCache() []Mount {
	return []Mount{{Kind: Cache, Target: "/var/cache/libdnf5", ID: "ov-dnf", Sharing: "locked"}}
}

func debCache() []Mount {
	return []Mount{
		{Kind: Cache, Target: "/var/cache/apt", ID: "ov-apt-cache", Sharing: "locked"},
		{Kind: Cache, Target: "/var/lib/apt", ID: "ov-apt-lib", Sharing: "locked"},
	}
}

func pkgCache(pkg string) []Mount {
	if pkg == "deb" {
		return debCache()
	}
	return rpmCache()
}

func npmCache(u spec.User) Mount {
	return Mount{Kind: Cache, Target: path.Join(u.Home, ".cache/npm"), ID: "ov-npm-" + strconv.Itoa(u.UID),
		Owned: true, UID: u.UID, GID: u.GID}
}

func cargoCache(u spec.User) Mount {
	return Mount{Kind: Cache, Target: path.Join(u.Home, ".cargo/registry"), ID: "ov-cargo-" + strconv.Itoa(u.UID),
		Owned: true, UID: u.UID, GID: u.GID}
}

func layerMount(layer string) Mount {
	return Mount{Kind: Bind, Target: LayerMount, From: layer, Source: "/"}
}

// bootstrap makes an external base usable: download tools (deb), task, the
// user.
func bootstrap(pkg string, u spec.User, task TaskSource) []Step {
	var steps []Step
	if pkg == "deb" {
		steps = append(steps, Step{Kind: Run, User: "root", Mounts: debCache(),
			Shell: "apt-get update && apt-get install -y --no-install-recommends curl ca-certificates",
			Desc:  "bootstrap: install curl and ca-certificates"})
	}
	steps = append(steps, Step{Kind: FetchTask, User: "root", Shell: unpackTask(task),
		Desc: "bootstrap: install task"})
	return append(steps, userStep(u))
}

// userStep creates u's account unless the image has one at its UID.
func userStep(u spec.User) Step {
	id, gid, name := strconv.Itoa(u.UID), strconv.Itoa(u.GID), Quote(u.Name)
	return Step{Kind: Run, User: "root",
		Shell: "getent passwd " + id + " || (getent group " + gid + " || groupadd -g " + gid + " " + name +
			" && useradd -m -u " + id + " -g " + gid + " -s /bin/bash " + name + ")",
		Desc: "bootstrap: user " + u.Name}
}

// ArchCase maps `uname -m` to a go-task release architecture in $arch and
// fails on anything else.
const ArchCase = `case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; ` +
	`*) echo "unsupported architecture: $(uname -m)" >&2; exit 1 ;; esac`

// unpackTask checks (when pinned) and unpacks the task archive found at
// TaskArchive. Both back ends run it after putting the archive there.
func unpackTask(t TaskSource) string {
	// Minimal bases (busybox) have no /usr/local/bin; on bootc (ublue)
	// bases /usr/local is a link to ../var/usrlocal, which does not exist
	// yet: mkdir -p fails on the dangling link, so create its target.
	unpack := "if [ -L /usr/local ] && [ ! -e /usr/local ]; then (cd /usr && mkdir -p \"$(readlink local)\"); fi && " +
		"mkdir -p /usr/local/bin && tar -xzf " + TaskArchive + " -C /usr/local/bin --no-same-owner task"
	if len(t.SHA256) == 0 {
		return unpack
	}
	var cases []string
	for _, arch := range []string{"amd64", "arm64"} {
		if sum := t.SHA256[arch]; sum != "" {
			cases = append(cases, arch+") sum="+strings.ToLower(sum)+" ;;")
		}
	}
	return ArchCase + " && case $arch in " + strings.Join(cases, " ") +
		` *) echo "no sha256 pinned for task on $arch" >&2; exit 1 ;; esac && ` +
		`if [ "$(sha256sum ` + TaskArchive + ` | cut -d ' ' -f 1)" != "$sum" ]; then echo "task archive: sha256 mismatch" >&2; exit 1; fi && ` +
		unpack
}

func pixiStage(layer string, f installfile.File, image, home, envDir string) PixiStage {
	ps := PixiStage{
		Layer: layer, Stage: layer + spec.PixiStageSuffix, Image: image, Manifest: f.Name,
		Workdir: home, EnvDir: envDir, Files: []string{f.Name}, Install: f.Kind.Shell(home, f),
	}
	if f.Kind.Setup != nil {
		ps.Setup = f.Kind.Setup(f)
	}
	if f.Lock != "" {
		ps.Files = append(ps.Files, f.Lock)
	}
	return ps
}

// layerSteps turns a layer's install files into steps.
type layerSteps struct {
	pkg  string
	user spec.User
	uid  string
}

func (ls *layerSteps) steps(l *spec.Layer) ([]Step, error) {
	var out []Step
	if s, ok, err := packageStep(ls.pkg, l); err != nil {
		return nil, err
	} else if ok {
		out = append(out, s)
	}
	for _, f := range l.Installs {
		if f.Kind.Stage {
			continue
		}
		// An install file adds files of the layer's own: see Step.Detach.
		s := Step{Kind: Run, User: ls.uid, Shell: f.Kind.Shell(LayerMount, f),
			Mounts: append([]Mount{layerMount(l.Name)}, ls.cache(f.Kind.Cache)...), Desc: f.Name, Detach: true}
		if f.Kind.Root {
			s.User = "root"
		}
		out = append(out, s)
	}
	for i := range out {
		out[i].Layer = l.Name
	}
	return out, nil
}

// cache returns the mounts of a kind's cache.
func (ls *layerSteps) cache(c installfile.Cache) []Mount {
	switch c {
	case installfile.PackageCache:
		return pkgCache(ls.pkg)
	case installfile.NpmCache:
		return []Mount{npmCache(ls.user)}
	case installfile.CargoCache:
		return []Mount{cargoCache(ls.user)}
	}
	return nil
}

// depends maps each of own to the layers of own it names in depends (layers
// a parent installs are in the base already).
func depends(own []*spec.Layer) map[string][]string {
	in := make(map[string]bool, len(own))
	for _, l := range own {
		in[l.Name] = true
	}
	deps := make(map[string][]string, len(own))
	for _, l := range own {
		var ds []string
		for _, d := range l.Depends {
			if in[d] {
				ds = append(ds, d)
			}
		}
		deps[l.Name] = ds
	}
	return deps
}

// Closure lists the layers layer depends on, directly or not, given the
// direct dependencies (Image.Depends): depth first, each once.
func Closure(direct map[string][]string, layer string) []string {
	var out []string
	seen := map[string]bool{layer: true}
	var visit func(string)
	visit = func(l string) {
		for _, d := range direct[l] {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
				visit(d)
			}
		}
	}
	visit(layer)
	return out
}

// AllDepends lists the own layers layer depends on, directly or not.
func (img *Image) AllDepends(layer string) []string { return Closure(img.Depends, layer) }

// detach clears Detach on the steps of layers an attached step depends on:
// the attached chain never sees detached steps, so whatever it needs must
// be in the chain itself.
//
// One walk for all attached layers, each layer's dependencies explored
// once: linear in the graph (a closure per layer was quadratic, 88 s for a
// 20,000-deep depends chain).
func detach(steps []Step, deps map[string][]string) {
	needed := map[string]bool{}
	explored := map[string]bool{}
	var visit func(string)
	visit = func(l string) {
		if explored[l] {
			return
		}
		explored[l] = true
		for _, d := range deps[l] {
			needed[d] = true
			visit(d)
		}
	}
	for _, s := range steps {
		if !s.Detach && s.Layer != "" {
			visit(s.Layer)
		}
	}
	for i := range steps {
		if needed[steps[i].Layer] {
			steps[i].Detach = false
		}
	}
}

// ownVolumes are the paths of the volumes img declares beyond its parent's.
func (b *builder) ownVolumes(img *spec.Image) []string {
	inherited := map[string]bool{}
	if parent := b.p.Images[img.Parent]; parent != nil {
		for _, v := range b.p.Volumes(parent) {
			inherited[v.Name] = true
		}
	}
	var out []string
	for _, v := range b.p.Volumes(img) {
		if !inherited[v.Name] {
			out = append(out, v.Path)
		}
	}
	return out
}

// volumeDirs is a root step that creates the mount points of the image's
// volumes owned by the user, or nil when there is nothing to create. An
// engine makes a new named volume from the directory it is mounted on,
// owner included, and creates a missing one owned by root: the user could
// then write neither to the volume nor, for ~/.ollama/models, next to it.
// Below home every directory from home down is the user's; elsewhere the
// mount point itself.
func volumeDirs(paths []string, u spec.User) *Step {
	if len(paths) == 0 || u.UID == 0 {
		return nil
	}
	var dirs []string
	for _, p := range paths {
		p = spec.ExpandHome(p, u.Home)
		for _, d := range homeDirs(p, u.Home) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	owner := strconv.Itoa(u.UID) + ":" + strconv.Itoa(u.GID)
	list := QuoteAll(dirs)
	return &Step{Kind: Run, User: "root", Shell: "mkdir -p " + list + " && chown " + owner + " " + list,
		Desc: "volume mount points"}
}

// homeDirs lists the directories from below home down to target when
// target is under home, else target alone.
func homeDirs(target, home string) []string {
	rel, ok := strings.CutPrefix(path.Clean(target), strings.TrimSuffix(home, "/")+"/")
	if !ok {
		return []string{path.Clean(target)}
	}
	parts := strings.Split(rel, "/")
	out := make([]string, len(parts))
	for k := range parts {
		out[k] = path.Join(home, strings.Join(parts[:k+1], "/"))
	}
	return out
}

// prepareCacheDirs inserts, before the first step with a user-owned cache
// mount, a root step that creates those mount targets and their parents
// below home owned by the user (and home, if the base lacks it). A cache
// mount creates missing parents owned by root, and the user then cannot write
// next to it (cargo's ~/.cargo/.crates.toml); a root-owned empty mount point
// would also stay behind in the image.
func prepareCacheDirs(steps []Step, u spec.User) []Step {
	first := -1
	var dirs []string
	for i, s := range steps {
		for _, m := range s.Mounts {
			if m.Kind != Cache || !m.Owned || !strings.HasPrefix(m.Target, strings.TrimSuffix(u.Home, "/")+"/") {
				continue
			}
			if first < 0 {
				first = i
			}
			for _, d := range homeDirs(m.Target, u.Home) {
				if !slices.Contains(dirs, d) {
					dirs = append(dirs, d)
				}
			}
		}
	}
	if first < 0 || u.UID == 0 {
		return steps
	}
	owner := strconv.Itoa(u.UID) + ":" + strconv.Itoa(u.GID)
	qh, list := Quote(u.Home), QuoteAll(dirs)
	prep := Step{Kind: Run, Layer: steps[first].Layer, User: "root",
		Shell: "{ [ -d " + qh + " ] || { mkdir -p " + qh + " && chown " + owner + " " + qh + "; }; } && " +
			"mkdir -p " + list + " && chown " + owner + " " + list,
		Desc: "user cache directories"}
	return slices.Insert(steps, first, prep)
}

// packageStep installs the layer's system packages for pkg.
func packageStep(pkg string, l *spec.Layer) (Step, bool, error) {
	pkgs := l.Packages(pkg)
	if len(pkgs) == 0 {
		return Step{}, false, nil
	}
	for _, p := range pkgs {
		if err := checkWord("package", p); err != nil {
			return Step{}, false, err
		}
	}
	if pkg == "deb" {
		return Step{Kind: Run, User: "root", Mounts: debCache(), Desc: "deb packages",
			Shell: "apt-get update && apt-get install -y --no-install-recommends " + QuoteAll(pkgs)}, true, nil
	}
	r := l.Rpm
	var cmds []string
	for _, repo := range r.Repos {
		s, err := repoSetup(repo)
		if err != nil {
			return Step{}, false, err
		}
		cmds = append(cmds, s...)
	}
	for _, c := range r.Copr {
		if err := checkWord("copr", c); err != nil {
			return Step{}, false, err
		}
		cmds = append(cmds, "dnf5 copr enable -y "+Quote(c))
	}
	install := []string{"dnf", "install", "-y"}
	for _, o := range r.Options {
		if err := checkWord("option", o); err != nil {
			return Step{}, false, err
		}
		install = append(install, Quote(o))
	}
	for _, repo := range r.Repos {
		install = append(install, Quote("--enable-repo="+repo.Name))
	}
	for _, e := range r.Exclude {
		if err := checkWord("exclude", e); err != nil {
			return Step{}, false, err
		}
		install = append(install, Quote("--exclude="+e))
	}
	cmds = append(cmds, strings.Join(install, " ")+" "+QuoteAll(pkgs))
	for _, c := range r.Copr {
		cmds = append(cmds, "dnf5 copr disable -y "+Quote(c))
	}
	return Step{Kind: Run, User: "root", Mounts: rpmCache(), Desc: "rpm packages",
		Shell: strings.Join(cmds, " && ")}, true, nil
}

// repoDirs are where dnf reads repository definitions from.
var repoDirs = []string{"/etc/yum.repos.d", "/etc/distro.repos.d"}

// repoSetup adds an rpm repository, disabled (the install enables it), and
// imports its key when one is given. Both are idempotent, as bases often
// carry the repository or key already: a repository id already defined
// is left as it is (dnf5 addrepo refuses an existing id), and a key rpm
// does not import (already there) is not an error here: were it missing,
// the install's signature check would fail.
func repoSetup(repo spec.Repo) ([]string, error) {
	if err := checkWord("repository name", repo.Name); err != nil {
		return nil, err
	}
	if err := checkWord("repository url", repo.URL); err != nil {
		return nil, err
	}
	var globs []string
	for _, d := range repoDirs {
		globs = append(globs, d+"/*.repo")
	}
	cmds := []string{"if grep -Fqsx " + Quote("["+repo.Name+"]") + " " + strings.Join(globs, " ") +
		"; then echo " + Quote("rpm repository "+repo.Name+" is already defined: kept as it is") + "; else " +
		"dnf5 config-manager addrepo --from-repofile=" + Quote(repo.URL) + " && " +
		"dnf5 config-manager setopt " + Quote(repo.Name+".enabled=0") + "; fi"}
	if repo.GPGKey != "" {
		if err := checkWord("gpgkey", repo.GPGKey); err != nil {
			return nil, err
		}
		cmds = append(cmds, "{ rpm --import "+Quote(repo.GPGKey)+" || echo "+
			Quote("gpgkey "+repo.GPGKey+" not imported (already there?): the install checks signatures")+" >&2; }")
	}
	return cmds, nil
}

// checkWord rejects values no shell word in a Containerfile RUN can carry (a
// newline ends the instruction) or that are empty.
func checkWord(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%s %q contains a control character", what, s)
	}
	return nil
}

// safeWord matches words the shell reads literally without quotes.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// Quote returns s as one literal POSIX shell word.
func Quote(s string) string {
	if safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteAll quotes each word and joins them with spaces.
func QuoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// services adds the supervisord fragments and the assembly step when any
// layer of the chain has a service.
func (b *builder) services(pl *Image, img *spec.Image, chain []*spec.Layer) error {
	width := max(2, len(strconv.Itoa(len(chain))))
	var frags []File
	for i, l := range chain {
		if l.Service == "" {
			continue
		}
		text, err := fragment(l)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%0*d-%s.conf", width, i+1, l.Name)
		frags = append(frags, File{Name: name, Content: withHeader(".build/"+img.Name+"/fragments/"+name, "; ", text)})
	}
	if len(frags) == 0 {
		return nil
	}
	header, err := spec.ReadProjectFile(b.p.Dir, HeaderFile)
	if errors.Is(err, fs.ErrNotExist) {
		header = []byte(defaultHeader)
	} else if err != nil {
		return fmt.Errorf("supervisord header: %w", err)
	}
	name := strings.Repeat("0", width) + "-header.conf"
	pl.Fragments = append([]File{{Name: name, Content: withHeader(".build/"+img.Name+"/fragments/"+name, "; ", ensureNewline(string(header)))}}, frags...)
	pl.Steps = append(pl.Steps, Step{Kind: Run, User: "root",
		Shell:  "cat " + FragmentsMount + "/*.conf > /etc/supervisord.conf",
		Mounts: []Mount{{Kind: Bind, Target: FragmentsMount, From: StageSupervisord, Source: FragmentsMount}},
		Desc:   "assemble /etc/supervisord.conf"})
	return nil
}

const defaultHeader = `[supervisord]
nodaemon=true
logfile=/dev/null
logfile_maxbytes=0
pidfile=/tmp/supervisord.pid
`

// fragment checks a layer's service text (spec.CheckService) and returns
// it as a fragment.
func fragment(l *spec.Layer) (string, error) {
	if err := spec.CheckService(l.Name, l.Service); err != nil {
		return "", fmt.Errorf("%s: %w", l.Pos.File, err)
	}
	return ensureNewline(l.Service), nil
}

func ensureNewline(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// withHeader prefixes content with the generated-file header as a comment.
func withHeader(path, comment, content string) []byte {
	return []byte(comment + path + " (generated -- do not edit)\n" + content)
}

// routes adds the traefik routes file and its COPY when any layer of the
// chain has a route.
func routes(pl *Image, img *spec.Image, chain []*spec.Layer) error {
	type server struct {
		URL string `yaml:"url"`
	}
	type service struct {
		LoadBalancer struct {
			Servers []server `yaml:"servers"`
		} `yaml:"loadBalancer"`
	}
	// A router without entryPoints listens on every entry point, the
	// dashboard's too: bind each to web.
	type router struct {
		EntryPoints []string `yaml:"entryPoints"`
		Rule        string   `yaml:"rule"`
		Service     string   `yaml:"service"`
	}
	routers, services := map[string]router{}, map[string]service{}
	for _, l := range chain {
		if l.Route == nil {
			continue
		}
		if !hostRE.MatchString(l.Route.Host) || len(l.Route.Host) > 253 {
			return fmt.Errorf("%s: route host %q is not a DNS name", l.Pos.File, l.Route.Host)
		}
		if l.Route.Port < 1 || l.Route.Port > 65535 {
			return fmt.Errorf("%s: route port %d is out of range", l.Pos.File, l.Route.Port)
		}
		routers[l.Name] = router{EntryPoints: []string{TraefikEntryPoint}, Rule: "Host(`" + l.Route.Host + "`)", Service: l.Name}
		var s service
		s.LoadBalancer.Servers = []server{{URL: "http://127.0.0.1:" + strconv.Itoa(l.Route.Port)}}
		services[l.Name] = s
	}
	if len(routers) == 0 {
		return nil
	}
	doc := map[string]any{"http": map[string]any{"routers": routers, "services": services}}
	var y strings.Builder
	enc := yaml.NewEncoder(&y)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	pl.Routes = withHeader(".build/"+img.Name+"/traefik-routes.yml", "# ", y.String())
	pl.Steps = append(pl.Steps, Step{Kind: Copy, From: StageTraefik, Src: "/routes.yml", Dst: RoutesFile,
		Desc: "COPY traefik routes"})
	return nil
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// Attach returns img with the steps of layers, and of the layers they
// depend on, attached (Detach cleared): for layers a build found rewriting
// a shared file another step also writes. img is not changed.
func (img *Image) Attach(layers []string) *Image {
	if len(layers) == 0 {
		return img
	}
	attach := map[string]bool{}
	for _, l := range layers {
		attach[l] = true
		for _, d := range img.AllDepends(l) {
			attach[d] = true
		}
	}
	out := *img
	out.Steps = slices.Clone(img.Steps)
	for i := range out.Steps {
		if attach[out.Steps[i].Layer] {
			out.Steps[i].Detach = false
		}
	}
	return &out
}
