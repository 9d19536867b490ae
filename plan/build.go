package plan

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"

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
	// Epoch is the SOURCE_DATE_EPOCH of every image; nil for none.
	Epoch *Epoch
	// Origin is the repository and commit the images' annotations name.
	Origin Origin
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
			return nil, inputErr(spec.Pos{}, "image %q is not in images.yml", n)
		case !img.Enabled:
			return nil, inputErr(spec.Pos{}, "image %q is disabled (enabled: false)", n)
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
			return want.WithDefaultHome(), nil
		}
	}
	return &builder{ctx: ctx, p: p, opts: opts, users: map[string]spec.User{}, plans: map[string]*Image{}}
}

func checkRef(what, ref string) error {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return inputErr(spec.Pos{}, "%s %q is not a valid image reference: %v", what, ref, err)
	}
	return nil
}

// image plans one image; its parent, if any, is already planned.
func (b *builder) image(img *spec.Image) (*Image, error) {
	if err := spec.CheckName("image", img.Name); err != nil {
		return nil, inputErr(img.Pos, "%v", err)
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
		Epoch:     b.opts.Epoch,
	}
	for _, t := range pl.Tags {
		if strings.HasSuffix(t, ":") {
			return nil, inputErr(spec.Pos{}, "tag %q has no version (no CalVer given)", t)
		}
		if err := checkRef("tag", t); err != nil {
			return nil, err
		}
	}
	if img.Parent != "" {
		parent := b.plans[img.Parent]
		if parent == nil {
			return nil, inputErr(spec.Pos{}, "base image %q is not planned (is it enabled?)", img.Parent)
		}
		pl.Parent = img.Parent
		pl.ParentRef = parent.Tags[len(parent.Tags)-1] // :latest for "auto": stable across runs
	} else {
		if err := checkRef("base", img.Base); err != nil {
			return nil, err
		}
		pl.External = img.Base
	}
	pl.describe(b.opts.Origin)

	own := b.p.LayersOf(img)
	for i, l := range own {
		if l == nil {
			return nil, inputErr(spec.Pos{}, "layer %q is not in layers/", img.Install[i])
		}
		if err := spec.CheckName("layer", l.Name); err != nil {
			return nil, inputErr(spec.Pos{File: l.Pos.File}, "%v", err)
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
			return nil, inputErr(spec.Pos{}, "env %s (from %s): %v", kv.Key, envSource(own, kv.Key), err)
		}
		pl.Env = append(pl.Env, EnvVar{Key: kv.Key, Value: kv.Value})
	}
	for _, pa := range paths {
		if err := spec.CheckEnvValue(pa); err != nil {
			return nil, inputErr(spec.Pos{}, "path_append %q: %v", pa, err)
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

// inputErr is a mistake in what Build was given (the project, the options,
// a base's account) rather than a failure to read it: a *spec.Error, at pos
// when known.
func inputErr(pos spec.Pos, format string, args ...any) error {
	return &spec.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
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
