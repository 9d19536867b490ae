// Package llb compiles build plans to BuildKit LLB and solves them.
//
// Compile is pure: one plan.Image and one platform in, an LLB state and an
// image config out. It renders the plan's steps the way the Dockerfile
// frontend renders the Containerfile that generate/ writes from the same plan,
// so `ov build` and `docker buildx bake` produce the same root filesystem and
// config. Nothing here decides what to run: shells, mounts and users all come
// from the plan.
//
// Build solves a family of images against buildkitd and hands each result to
// an Exporter (OCI layout, OCI archive, registry push, docker/podman load).
package llb

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	bk "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/util/system"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/plan"
)

// historyComment marks the history entries ov writes.
const historyComment = "ov.llb.v0"

// Image is one plan.Image compiled for one platform: the root filesystem as
// an LLB state and the image config the exporter writes.
type Image struct {
	Name     string
	Platform ocispecs.Platform
	State    bk.State
	Config   dockerspec.DockerOCIImage
	// BaseConfig is the config of the external base the image (or its
	// first ancestor) starts from, nil for scratch: the exporter keeps the
	// layers and history times it lists as they are when it stamps the
	// epoch (plan.Epoch), as it does for a Containerfile's FROM.
	BaseConfig []byte
	// Run is the filesystem of State that a child's steps run on: the
	// attached chain's end with the detached groups' diffs on top (State
	// when nothing detached). Once the checks pass it holds what State
	// holds, but BuildKit materializes it by stacking the chain and
	// copying only the groups, where State, merged in step order, would
	// copy every attached step after the first group (a distribution's
	// packages). Exports use State, whose layers keep the step order.
	Run bk.State

	// Checks are the detached-layer checks of this image and the images it
	// is built on (see detach.go): solve each and read CheckFile from it.
	Checks []Check
}

// Check is one image's detached-layer check.
type Check struct {
	Image string
	State bk.State
}

// Options are the inputs Compile needs beyond the plan.
type Options struct {
	// Resolver resolves external base images (the base and pixi images) to a
	// digest and config. In a build it is the gateway client, so the
	// daemon's registry mirrors and credentials apply.
	Resolver bk.ImageMetaResolver
	// Parent is the parent image compiled for the same platform; required
	// when the plan's base is another image. Its state is used directly: no
	// push or pull in between.
	Parent *Image
	// Linear builds every step in one chain, as a Containerfile does.
	Linear bool
	// Attach names layers whose steps stay in the chain although they could
	// detach (a check found them conflicting): see plan.Image.Attach.
	Attach map[string]bool
	// SeeAll names detached layers that run on every group before them, not
	// just their depends (a step of theirs failed without them).
	SeeAll map[string]bool
}

// LocalName is the name of the BuildKit local source holding a layer's files.
func LocalName(layer string) string { return "layer-" + layer }

// LocalDirs maps the local source names the images' LLB uses to directories,
// for the session that serves them.
func LocalDirs(imgs ...*plan.Image) map[string]string {
	dirs := map[string]string{}
	for _, img := range imgs {
		for _, c := range img.Contexts {
			dirs[LocalName(c.Layer)] = c.Dir
		}
	}
	return dirs
}

// Compile turns img into LLB for one platform.
func Compile(ctx context.Context, img *plan.Image, platform ocispecs.Platform, opt Options) (*Image, error) {
	img = Arrange(img, opt)
	c := &compiler{img: img, opt: opt, platform: platforms.Normalize(platform)}
	out, err := c.compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %q (%s): %w", img.Name, platforms.Format(c.platform), err)
	}
	return out, nil
}

// Arrange returns img with the steps opt keeps in the chain attached: the
// layers opt.Attach names (and their depends), and every layer before an
// attached SeeAll layer. The chain holds no detached group, so a layer that
// needs every layer before it and runs in the chain needs them there too.
func Arrange(img *plan.Image, opt Options) *plan.Image {
	img = img.Attach(slices.Sorted(maps.Keys(opt.Attach)))
	last := -1
	for i, s := range img.Steps {
		if !s.Detach && opt.SeeAll[s.Layer] {
			last = i
		}
	}
	var before []string
	for _, s := range img.Steps[:last+1] {
		if s.Detach && !slices.Contains(before, s.Layer) {
			before = append(before, s.Layer)
		}
	}
	return img.Attach(before)
}

type compiler struct {
	img      *plan.Image
	opt      Options
	platform ocispecs.Platform
	stages   map[string]bk.State
	main     *stage
	run      bk.State // the image's Run (see Image.Run)
}

// stage is a state under construction together with the config the
// Dockerfile frontend would track for it.
type stage struct {
	st       bk.State
	cfg      dockerspec.DockerOCIImage
	platform ocispecs.Platform
	base     []byte // the external base's config as resolved; nil for scratch
}

func (c *compiler) compile(ctx context.Context) (*Image, error) {
	img := c.img
	if (img.External == "") == (img.Parent == "") {
		return nil, fmt.Errorf("plan must set exactly one of External and Parent")
	}
	if err := c.buildStages(ctx); err != nil {
		return nil, err
	}

	c.main = &stage{platform: c.platform}
	if img.Parent != "" {
		p := c.opt.Parent
		if p == nil || p.Name != img.Parent {
			return nil, fmt.Errorf("parent image %q was not compiled", img.Parent)
		}
		if !platforms.Only(c.platform).Match(p.Platform) {
			return nil, fmt.Errorf("parent image %q is compiled for %s", img.Parent, platforms.Format(p.Platform))
		}
		c.main.st = p.Run
		c.main.cfg = cloneConfig(p.Config)
		c.main.cfg.Created = nil
		c.main.base = p.BaseConfig
	} else {
		if err := c.main.from(ctx, c.opt.Resolver, img.External, c.label("", "FROM "+img.External)); err != nil {
			return nil, err
		}
	}
	c.main.st = c.main.st.Platform(c.platform)
	c.main.init()
	c.epochEnv(c.main)

	parts := &mainParts{ctx: ctx, c: c}
	if err := img.Walk(parts); err != nil {
		return nil, err
	}
	var checks []Check
	if p := c.opt.Parent; p != nil {
		checks = slices.Clone(p.Checks)
	}
	if parts.check != nil {
		checks = append(checks, *parts.check)
	}
	c.main.labels(img.Labels)
	c.main.finalizePlatform()
	run := c.main.st
	if c.run.Output() != nil {
		run = c.main.st.WithOutput(c.run.Output())
	}
	if parts.check == nil {
		c.main.st = c.exported(c.main.st)
	}
	st := c.main.st.SetMarshalDefaults(bk.Platform(c.platform))
	return &Image{Name: img.Name, Platform: c.platform, State: st, Config: c.main.cfg, BaseConfig: c.main.base, Checks: checks,
		Run: run.SetMarshalDefaults(bk.Platform(c.platform))}, nil
}

// exported returns st, a state on the parent's Run, on the parent's State
// instead: the parent's layers as it exports them, then what st added
// (Diff of a chain on its lower state reuses its layers).
func (c *compiler) exported(st bk.State) bk.State {
	p := c.opt.Parent
	if p == nil || p.Run.Output() == p.State.Output() {
		return st
	}
	if st.Output() == p.Run.Output() {
		return st.WithOutput(p.State.Output())
	}
	return st.WithOutput(bk.Merge([]bk.State{p.State, bk.Diff(p.Run, st, c.label("", "diff on parent").opt())}, c.label("", "on parent").opt()).Output())
}

// mainParts applies the plan's parts to the main stage.
type mainParts struct {
	ctx   context.Context
	c     *compiler
	check *Check // the check of the detached steps, if any
}

var _ plan.Visitor = (*mainParts)(nil)

func (m *mainParts) Bootstrap(s plan.Step) error { return m.c.step(m.ctx, s) }

func (m *mainParts) Config(cfg plan.Config) error {
	main := m.c.main
	if cfg.Workdir != "" {
		main.workdir(cfg.Workdir, m.c.label("", "WORKDIR "+cfg.Workdir))
	}
	for _, e := range cfg.Env {
		main.env(e.Key, e.Value)
	}
	if len(cfg.PathAppend) > 0 {
		main.env("PATH", strings.Join(cfg.PathAppend, ":")+":"+main.getEnv("PATH"))
	}
	for _, port := range cfg.Expose {
		main.expose(port)
	}
	return nil
}

func (m *mainParts) Steps(steps []plan.Step) (err error) {
	m.check, err = m.c.detached(m.ctx, steps)
	return err
}

func (m *mainParts) Lint(s plan.Step) error {
	m.c.run = bk.State{} // the lint runs on State: children build on its result
	return m.c.step(m.ctx, s)
}

func (m *mainParts) User(uid string) error {
	m.c.main.user(uid)
	return nil
}

// Description keys naming the step an LLB vertex belongs to, so build
// errors can say which image, layer and step failed.
const (
	DescImage = "ov.image"
	DescLayer = "ov.layer"
	DescStep  = "ov.step"
)

// label names a vertex for progress and errors.
type label struct{ image, layer, step, name string }

func (l label) opt() bk.ConstraintsOpt {
	return bk.WithDescription(map[string]string{
		"llb.customname": l.name,
		DescImage:        l.image,
		DescLayer:        l.layer,
		DescStep:         l.step,
	})
}

// with is the label of a related vertex: same step, another name.
func (l label) with(name string) label { l.name = name; return l }

// label is "[image layer] desc", with the platform when the image builds
// for several.
func (c *compiler) label(layer, desc string) label {
	parts := []string{c.img.Name}
	if layer != "" {
		parts = append(parts, layer)
	}
	if len(c.img.Platforms) > 1 {
		parts = append(parts, platforms.Format(c.platform))
	}
	return label{image: c.img.Name, layer: layer, step: desc, name: "[" + strings.Join(parts, " ") + "] " + desc}
}

// buildStages makes the named states steps copy or mount from.
func (c *compiler) buildStages(ctx context.Context) error {
	img := c.img
	c.stages = map[string]bk.State{}
	for _, lc := range img.Contexts {
		c.stages[lc.Layer] = bk.Local(LocalName(lc.Layer),
			bk.SharedKeyHint(lc.Dir),
			bk.WithCustomName("[layer "+lc.Layer+"] load files"))
	}
	if img.Fragments != nil {
		st := bk.Scratch().File(bk.Mkdir("/fragments", 0o755), c.label("", "stage "+plan.StageSupervisord).opt())
		for _, f := range img.Fragments {
			st = st.File(bk.Mkfile(path.Join("/fragments", f.Name), 0o644, f.Content),
				c.label("", "supervisord fragment "+f.Name).opt())
		}
		c.stages[plan.StageSupervisord] = st
	}
	if img.Routes != nil {
		c.stages[plan.StageTraefik] = bk.Scratch().File(bk.Mkfile("/routes.yml", 0o644, img.Routes),
			c.label("", "stage "+plan.StageTraefik).opt())
	}
	for _, ps := range img.Pixi {
		st, err := c.pixiStage(ctx, ps)
		if err != nil {
			return fmt.Errorf("pixi stage %q: %w", ps.Stage, err)
		}
		c.stages[ps.Stage] = st
	}
	return nil
}

// pixiStage renders
//
//	FROM <pixi image> AS <stage>
//	RUN <setup>                       (when set)
//	WORKDIR <workdir>
//	COPY --from=<layer> <files> ./    (one COPY per file)
//	RUN <install>
func (c *compiler) pixiStage(ctx context.Context, ps plan.PixiStage) (bk.State, error) {
	layerFiles, ok := c.stages[ps.Layer]
	if !ok {
		return bk.State{}, fmt.Errorf("layer %q has no context", ps.Layer)
	}
	s := &stage{platform: c.platform}
	if err := s.from(ctx, c.opt.Resolver, ps.Image, c.label(ps.Layer, "FROM "+ps.Image)); err != nil {
		return bk.State{}, err
	}
	s.init()
	c.epochEnv(s)
	if ps.Setup != "" {
		s.run(bk.Args(s.shell(ps.Setup)), c.label(ps.Layer, "pixi "+ps.Setup).opt())
	}
	if ps.Workdir != "" {
		s.workdir(ps.Workdir, c.label(ps.Layer, "pixi WORKDIR "+ps.Workdir))
	}
	for _, f := range ps.Files {
		s.copy(layerFiles, f, "./", "", c.label(ps.Layer, "pixi COPY "+f), "")
	}
	s.run(bk.Args(s.shell(ps.Install)), c.label(ps.Layer, "pixi "+ps.Install).opt())
	return s.st, nil
}

// epochEnv gives the steps of stage s an explicit SOURCE_DATE_EPOCH, as
// ARG SOURCE_DATE_EPOCH does in the Containerfile with bake's build
// argument (plan.Epoch). A default epoch stays out of the steps, and so
// out of their cache keys: the exporter stamps it (EpochAttrs).
func (c *compiler) epochEnv(s *stage) {
	if e := c.img.Epoch; e != nil && e.Explicit {
		s.st = s.st.AddEnv(plan.EpochEnv, strconv.FormatInt(e.Unix, 10))
	}
}

func (c *compiler) step(ctx context.Context, s plan.Step) error {
	if s.User != "" {
		c.main.user(s.User)
	}
	lbl := c.label(s.Layer, s.Desc)
	fail := func(err error) error {
		if s.Layer != "" {
			return fmt.Errorf("layer %q, step %q: %w", s.Layer, s.Desc, err)
		}
		return fmt.Errorf("step %q: %w", s.Desc, err)
	}
	switch s.Kind {
	case plan.Run, plan.FetchTask:
		opts := []bk.RunOption{bk.Args(c.main.shell(s.Shell)), lbl.opt()}
		for _, m := range s.Mounts {
			o, err := c.mount(m)
			if err != nil {
				return fail(err)
			}
			opts = append(opts, o)
		}
		if s.Kind == plan.FetchTask {
			o, err := c.taskArchive(lbl)
			if err != nil {
				return fail(err)
			}
			opts = append(opts, o)
		}
		c.main.run(opts...)
	case plan.Copy:
		from, ok := c.stages[s.From]
		if !ok {
			return fail(fmt.Errorf("unknown stage %q", s.From))
		}
		c.main.copy(from, s.Src, s.Dst, s.Chown, lbl, createdBy(s))
		return nil
	default:
		return fail(fmt.Errorf("unknown step kind %d", s.Kind))
	}
	c.main.history(createdBy(s), true)
	return nil
}

// createdBy is a step's history entry: "<layer>: <desc>".
func createdBy(s plan.Step) string {
	if s.Layer == "" {
		return s.Desc
	}
	return s.Layer + ": " + s.Desc
}

// mount renders a RUN --mount like the Dockerfile frontend does.
func (c *compiler) mount(m plan.Mount) (bk.RunOption, error) {
	if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
		return nil, fmt.Errorf("invalid mount target %q", m.Target)
	}
	switch m.Kind {
	case plan.Cache:
		id := m.ID
		if id == "" {
			id = path.Clean(m.Target)
		}
		// The frontend namespaces ids as "<BUILDKIT_CACHE_MOUNT_NS>/<id>";
		// same ids share the same cache directories with bake builds.
		opts := []bk.MountOption{bk.AsPersistentCacheDir("/"+id, cacheSharing(m.Sharing))}
		base := bk.Scratch()
		if m.Owned {
			// The frontend creates the cache root owned by uid:gid on a
			// scratch state and mounts that directory.
			base = base.File(bk.Mkdir("/cache", 0o755, bk.WithUIDGID(m.UID, m.GID)),
				bk.WithCustomName("[internal] setting cache mount permissions"))
			opts = append(opts, bk.SourcePath("/cache"))
		}
		return bk.AddMount(m.Target, base, opts...), nil
	case plan.Bind:
		from, ok := c.stages[m.From]
		if !ok {
			return nil, fmt.Errorf("mount %s: unknown stage %q", m.Target, m.From)
		}
		opts := []bk.MountOption{bk.Readonly}
		if src := path.Join("/", m.Source); src != "/" {
			opts = append(opts, bk.SourcePath(src))
		}
		return bk.AddMount(m.Target, from, opts...), nil
	}
	return nil, fmt.Errorf("mount %s: unknown kind %d", m.Target, m.Kind)
}

func cacheSharing(s string) bk.CacheMountSharingMode {
	switch s {
	case "locked":
		return bk.CacheMountLocked
	case "private":
		return bk.CacheMountPrivate
	}
	return bk.CacheMountShared
}

// taskArchive mounts the task archive for the platform at plan.TaskArchive,
// downloaded by BuildKit and pinned by checksum when the source has one.
// The mount leaves nothing behind in the image.
func (c *compiler) taskArchive(lbl label) (bk.RunOption, error) {
	task := c.img.Task
	if task.URL == "" {
		return nil, fmt.Errorf("no task download location configured")
	}
	arch := c.platform.Architecture
	if c.platform.OS != "linux" || (arch != "amd64" && arch != "arm64") {
		return nil, fmt.Errorf("task is only fetched for linux/amd64 and linux/arm64, not %s", platforms.Format(c.platform))
	}
	const file = "task.tar.gz"
	opts := []bk.HTTPOption{bk.Filename(file), lbl.with(lbl.name + " (download " + path.Base(task.ArchiveURL(arch)) + ")").opt()}
	if sum := task.SHA256[arch]; sum != "" {
		d := digest.NewDigestFromEncoded(digest.SHA256, strings.ToLower(sum))
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("task sha256 for %s: %w", arch, err)
		}
		opts = append(opts, bk.Checksum(d))
	}
	archive := bk.HTTP(task.ArchiveURL(arch), opts...)
	return bk.AddMount(plan.TaskArchive, archive, bk.SourcePath("/"+file), bk.Readonly), nil
}

// from starts the stage from an external image, resolved to a digest, with
// its config.
func (s *stage) from(ctx context.Context, r bk.ImageMetaResolver, ref string, lbl label) error {
	if r == nil {
		return fmt.Errorf("base %q: no image resolver", ref)
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("base %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	resolved, dgst, dt, err := r.ResolveImageConfig(ctx, named.String(), sourceresolver.Opt{
		LogName:  lbl.name + ": load metadata",
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &s.platform},
	})
	if err != nil {
		return fmt.Errorf("base %q: %w", ref, err)
	}
	if resolved != "" && resolved != named.String() {
		if named, err = reference.ParseNormalizedNamed(resolved); err != nil {
			return fmt.Errorf("base %q: resolved to %q: %w", ref, resolved, err)
		}
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(dt, &img); err != nil {
		return fmt.Errorf("base %q: image config: %w", ref, err)
	}
	if dgst != "" {
		if named, err = reference.WithDigest(named, dgst); err != nil {
			return fmt.Errorf("base %q: %w", ref, err)
		}
	}
	img.Created = nil
	s.cfg = img
	if isScratch(img) {
		s.st = bk.Scratch()
		return nil
	}
	s.base = dt
	s.st = bk.Image(named.String(), bk.Platform(s.platform), lbl.opt())
	return nil
}

// isScratch reports an image without layers, which the frontend builds on
// an empty state.
func isScratch(img dockerspec.DockerOCIImage) bool {
	if len(img.RootFS.DiffIDs) > 0 {
		return false
	}
	for _, h := range img.History {
		if !h.EmptyLayer {
			return false
		}
	}
	return true
}

// init loads the config's env, dir and user into the state, with the
// default PATH when the base has none, as the frontend does for every stage.
func (s *stage) init() {
	if _, ok := lookupEnv(s.cfg.Config.Env, "PATH"); !ok {
		s.cfg.Config.Env = append(s.cfg.Config.Env, "PATH="+system.DefaultPathEnv("linux"))
	}
	for _, kv := range s.cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		s.st = s.st.AddEnv(k, v)
	}
	if s.cfg.Config.WorkingDir != "" {
		s.st = s.st.Dir(s.cfg.Config.WorkingDir)
	}
	if s.cfg.Config.User != "" {
		s.st = s.st.User(s.cfg.Config.User)
	}
}

func (s *stage) getEnv(k string) string {
	v, _ := lookupEnv(s.cfg.Config.Env, k)
	return v
}

func lookupEnv(env []string, k string) (string, bool) {
	for _, kv := range env {
		if key, v, _ := strings.Cut(kv, "="); key == k {
			return v, true
		}
	}
	return "", false
}

// env is ENV k=v: replaced in place when set, appended otherwise.
func (s *stage) env(k, v string) {
	s.st = s.st.AddEnv(k, v)
	i := slices.IndexFunc(s.cfg.Config.Env, func(kv string) bool {
		key, _, _ := strings.Cut(kv, "=")
		return key == k
	})
	if i >= 0 {
		s.cfg.Config.Env[i] = k + "=" + v
	} else {
		s.cfg.Config.Env = append(s.cfg.Config.Env, k+"="+v)
	}
	s.history("ENV "+k+"="+v, false)
}

// labels adds ls to the config's labels (the base's kept), as the
// Dockerfile frontend adds bake's.
func (s *stage) labels(ls map[string]string) {
	if len(ls) == 0 {
		return
	}
	if s.cfg.Config.Labels == nil {
		s.cfg.Config.Labels = map[string]string{}
	}
	maps.Copy(s.cfg.Config.Labels, ls)
}

func (s *stage) expose(port int) {
	if s.cfg.Config.ExposedPorts == nil {
		s.cfg.Config.ExposedPorts = map[string]struct{}{}
	}
	p := strconv.Itoa(port) + "/tcp"
	s.cfg.Config.ExposedPorts[p] = struct{}{}
	s.history("EXPOSE "+p, false)
}

// user is USER u. "root" on a base without a user changes nothing.
func (s *stage) user(u string) {
	cur := s.cfg.Config.User
	if u == cur || (u == "root" && cur == "") {
		return
	}
	s.st = s.st.User(u)
	s.cfg.Config.User = u
	s.history("USER "+u, false)
}

// workdir is WORKDIR dir: it creates the directory (owned by the current
// user) in a layer of its own, as the frontend does.
func (s *stage) workdir(dir string, lbl label) {
	wd := path.Clean(dir) // an absolute dir replaces the working directory
	if !path.IsAbs(dir) {
		wd = path.Clean(path.Join("/", s.cfg.Config.WorkingDir, dir))
	}
	s.cfg.Config.WorkingDir = wd
	s.st = s.st.Dir(wd)
	if wd == "/" {
		s.history("WORKDIR "+wd, false)
		return
	}
	opts := []bk.MkdirOption{bk.WithParents(true)}
	if u := s.cfg.Config.User; u != "" {
		opts = append(opts, bk.WithUser(u))
	}
	s.st = s.st.File(bk.Mkdir(wd, 0o755, opts...), lbl.opt())
	s.history("WORKDIR "+wd, true)
}

// shell wraps a command in the image's shell, /bin/sh -c by default.
func (s *stage) shell(cmd string) []string {
	sh := []string{"/bin/sh", "-c"}
	if len(s.cfg.Config.Shell) > 0 {
		sh = slices.Clone(s.cfg.Config.Shell)
	}
	return append(sh, cmd)
}

func (s *stage) run(opts ...bk.RunOption) {
	s.st = s.st.Run(opts...).Root()
}

// copy is COPY [--chown=chown] src dst from another state, with the
// frontend's copy semantics: directory contents, wildcards, symlinks
// followed, destination parents created, dst relative to the workdir.
func (s *stage) copy(from bk.State, src, dst, chown string, lbl label, desc string) {
	srcPath, _ := system.NormalizePath("/", src, "linux", false)
	dstPath, _ := system.NormalizePath(s.workdirOrRoot(), dst, "linux", true)
	opts := []bk.CopyOption{&bk.CopyInfo{
		FollowSymlinks:      true,
		CopyDirContentsOnly: true,
		CreateDestPath:      true,
		AllowWildcard:       true,
		AllowEmptyWildcard:  true,
	}}
	if chown != "" {
		opts = append(opts, bk.WithUser(chown))
	}
	s.st = s.st.File(bk.Copy(from, srcPath, dstPath, opts...), lbl.opt())
	if desc != "" {
		s.history(desc, true)
	}
}

func (s *stage) workdirOrRoot() string {
	if s.cfg.Config.WorkingDir == "" {
		return "/"
	}
	return s.cfg.Config.WorkingDir
}

func (s *stage) history(createdBy string, layer bool) {
	s.cfg.History = append(s.cfg.History, ocispecs.History{
		CreatedBy:  createdBy,
		Comment:    historyComment,
		EmptyLayer: !layer,
	})
}

// finalizePlatform stamps the target platform on the config.
func (s *stage) finalizePlatform() {
	p := s.platform
	same := s.cfg.OS == p.OS && s.cfg.Architecture == p.Architecture
	s.cfg.OS, s.cfg.Architecture = p.OS, p.Architecture
	if p.Variant != "" || !same {
		s.cfg.Variant = p.Variant
	}
	if p.OSVersion != "" || !same {
		s.cfg.OSVersion = p.OSVersion
	}
	s.cfg.Platform = platforms.Normalize(s.cfg.Platform)
}

// cloneConfig deep-copies the parts of a config that compiling mutates.
func cloneConfig(src dockerspec.DockerOCIImage) dockerspec.DockerOCIImage {
	img := src
	img.Config.Env = slices.Clone(src.Config.Env)
	img.Config.Cmd = slices.Clone(src.Config.Cmd)
	img.Config.Entrypoint = slices.Clone(src.Config.Entrypoint)
	img.Config.Shell = slices.Clone(src.Config.Shell)
	img.Config.OnBuild = slices.Clone(src.Config.OnBuild)
	img.Config.ExposedPorts = maps.Clone(src.Config.ExposedPorts)
	img.Config.Volumes = maps.Clone(src.Config.Volumes)
	img.Config.Labels = maps.Clone(src.Config.Labels)
	img.History = slices.Clone(src.History)
	img.RootFS.DiffIDs = slices.Clone(src.RootFS.DiffIDs)
	return img
}
